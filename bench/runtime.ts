/**
 * `pnpm bench runtime`: what read-your-writes costs a read. CPU time per call of
 * `readSideFor(keys)` against `readSide()` (the routing decision it adds to) in `ramp`, with the
 * old→new queue empty and holding 1,000 unapplied keys; and `recordWrite` per call. Ratios against
 * `readSide()` in the same run.
 */
import { z } from 'zod'
import { copy, createCutover, defineMigration, fieldMapper, type KeyValue, type Row, silentLogger, type Store } from '../packages/core/src/index.js'

/** A store that never answers: queued keys stay queued, so the queue holds what we put there. */
class StalledStore implements Store {
  readonly name = 'stalled'
  constructor(readonly keyField: string) {}
  get(): Promise<ReadonlyMap<string, Row>> {
    return new Promise(() => {})
  }
  scan(): Promise<readonly Row[]> {
    return Promise.resolve([])
  }
  upsert(): Promise<{ written: number; skipped: number }> {
    return new Promise(() => {})
  }
  delete(): Promise<number> {
    return Promise.resolve(0)
  }
}

function cpuMicrosPerCall(calls: number, fn: (i: number) => unknown): number {
  for (let i = 0; i < 10_000; i++) fn(i) // warm up
  const start = process.cpuUsage()
  for (let i = 0; i < calls; i++) fn(i)
  const used = process.cpuUsage(start)
  return (used.user + used.system) / calls
}

export async function benchmark(): Promise<string> {
  const mapper = fieldMapper({ old: z.object({ id: z.number() }), new: z.object({ id: z.number() }), fields: [copy('id')] })
  const migration = defineMigration({ name: 'items', old: new StalledStore('id'), new: new StalledStore('id'), mapper, mirror: { capacity: 100_000, recheckDelayMs: false } })
  const cutover = await createCutover({ migrations: [migration], deadLetters: { write: async () => {} }, env: { CUTOVER_PHASE: 'ramp', CUTOVER_READ_PERCENT: '100' }, logger: silentLogger })
  const runtime = cutover.migration('items')
  const calls = 200_000
  const context = (i: number) => ({ routingKey: `user-${i % 5_000}` })
  const rows: string[] = []
  const baseline = cpuMicrosPerCall(calls, (i) => runtime.readSide(context(i)))
  rows.push(row('readSide() (baseline)', baseline, baseline))
  rows.push(row('readSideFor([key]), queue empty', cpuMicrosPerCall(calls, (i) => runtime.readSideFor([i], context(i))), baseline))
  rows.push(row('readSideFor(undefined), queue empty', cpuMicrosPerCall(calls, (i) => runtime.readSideFor(undefined, context(i))), baseline))
  const queued: KeyValue[] = Array.from({ length: 1_000 }, (_, i) => 1_000_000 + i)
  for (const key of queued) runtime.recordWrite('old', { key, op: 'upsert' })
  rows.push(row('readSideFor([key]), 1,000 keys queued, key not among them', cpuMicrosPerCall(calls, (i) => runtime.readSideFor([i], context(i))), baseline))
  rows.push(row('readSideFor([key]), key queued (falls back)', cpuMicrosPerCall(calls, (i) => runtime.readSideFor([queued[i % 1_000] as KeyValue], context(i))), baseline))
  rows.push(row('recordWrite (coalesced into a queued key)', cpuMicrosPerCall(calls, (i) => runtime.recordWrite('old', { key: queued[i % 1_000] as KeyValue, op: 'upsert' })), baseline))
  await cutover.close({ timeoutMs: 10 })
  return [
    '## Runtime: read-your-writes',
    '',
    'CPU time per call (µs), ratio to `readSide()` measured in the same run; `ramp` at 100 %.',
    '',
    '| call | µs/call | × readSide |',
    '|---|---|---|',
    ...rows,
  ].join('\n')
}

function row(label: string, micros: number, baseline: number): string {
  return `| ${label} | ${micros.toFixed(3)} | ${(micros / baseline).toFixed(2)} |`
}
