/**
 * What a raw SQL statement does, as far as Cutover cares: transaction control (so hand-written
 * `begin`/`commit`/savepoints on a single connection are tracked like Kysely's own), or writes to
 * named tables (which cannot be attributed to keys). Anything else is `undefined`.
 */
export type RawStatement =
  | { readonly kind: 'begin' | 'commit' | 'rollback' }
  | { readonly kind: 'savepoint' | 'rollback-to' | 'release'; readonly name: string }
  | { readonly kind: 'write'; readonly tables: readonly string[] }

const IDENT = String.raw`(?:"((?:[^"]|"")+)"|([A-Za-z_][\w$]*))`
const BEGIN = /^\s*(?:begin|start\s+transaction)\b/i
const COMMIT = /^\s*(?:commit|end)\b(?!\s+prepared)/i
const ROLLBACK_TO = new RegExp(String.raw`^\s*rollback\s+(?:work\s+|transaction\s+)?to\s+(?:savepoint\s+)?${IDENT}`, 'i')
const ROLLBACK = /^\s*(?:rollback|abort)\b(?!\s+prepared)/i
const SAVEPOINT = new RegExp(String.raw`^\s*savepoint\s+${IDENT}`, 'i')
const RELEASE = new RegExp(String.raw`^\s*release\s+(?:savepoint\s+)?${IDENT}`, 'i')
const WRITE = new RegExp(String.raw`\b(?:insert\s+into|update|delete\s+from|merge\s+into|truncate(?:\s+table)?|copy)\s+(?:only\s+)?${IDENT}(?:\s*\.\s*${IDENT})?`, 'gi')

export function classifyRawStatement(text: string): RawStatement | undefined {
  if (BEGIN.test(text)) return { kind: 'begin' }
  if (COMMIT.test(text)) return { kind: 'commit' }
  let match = ROLLBACK_TO.exec(text)
  if (match) return { kind: 'rollback-to', name: identifier(match[1], match[2]) }
  if (ROLLBACK.test(text)) return { kind: 'rollback' }
  if ((match = SAVEPOINT.exec(text))) return { kind: 'savepoint', name: identifier(match[1], match[2]) }
  if ((match = RELEASE.exec(text))) return { kind: 'release', name: identifier(match[1], match[2]) }
  const tables: string[] = []
  for (const write of text.matchAll(WRITE)) {
    const first = identifier(write[1], write[2])
    tables.push(write[3] !== undefined || write[4] !== undefined ? `${first}.${identifier(write[3], write[4])}` : first)
  }
  return tables.length > 0 ? { kind: 'write', tables } : undefined
}

function identifier(quoted: string | undefined, bare: string | undefined): string {
  return quoted !== undefined ? quoted.replace(/""/g, '"') : (bare ?? '').toLowerCase()
}
