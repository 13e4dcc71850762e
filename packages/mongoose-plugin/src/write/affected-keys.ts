/**
 * Which documents a driver-level write touches, from its arguments and its result. Pure functions:
 * the observed collection feeds them what Mongoose hands the driver and what the driver returns.
 */
import type { Row } from '@cutover/core'

/** The key values a filter pins (`{ _id: x }`, `{ _id: { $eq: x } }`, `{ _id: { $in: [...] } }`), or undefined. */
export function keysPinnedBy(filter: unknown, keyField: string): unknown[] | undefined {
  if (!isPlainObject(filter)) return undefined
  const value = filter[keyField]
  if (value === undefined) return undefined
  if (!isOperatorObject(value)) return [value]
  const operators = Object.keys(value)
  if (operators.length !== 1) return undefined
  if (operators[0] === '$eq') return [value.$eq]
  if (operators[0] === '$in' && Array.isArray(value.$in)) return [...value.$in]
  return undefined
}

/** Whether a write failed in a way that guarantees it changed nothing (duplicate key, validation). */
export function changedNothing(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  const writeErrors = (error as { writeErrors?: unknown } | null)?.writeErrors
  return writeErrors === undefined && (code === 11000 || code === 11001 || code === 121)
}

/** Indexes of the operations of a failed batch that may have been applied. */
export function possiblyApplied(count: number, error: unknown, ordered: boolean): number[] {
  const errors = writeErrorIndexes(error)
  if (errors === undefined) return range(count) // outcome unknown (network, timeout): state-based mirroring re-copies
  const failed = new Set(errors)
  const firstFailure = errors.length === 0 ? count : Math.min(...errors)
  return range(count).filter((i) => !failed.has(i) && (!ordered || i < firstFailure))
}

/** Whether a failed batch says which of its operations failed (write errors), so the rest certainly applied. */
export function definiteOutcome(error: unknown): boolean {
  return writeErrorIndexes(error) !== undefined
}

function writeErrorIndexes(error: unknown): number[] | undefined {
  const raw = (error as { writeErrors?: unknown } | null)?.writeErrors
  if (raw === undefined || raw === null) return undefined
  const list = Array.isArray(raw) ? raw : [raw]
  return list.map((e) => (e as { index?: number }).index).filter((i): i is number => typeof i === 'number')
}

/** `insertedIds` / `upsertedIds` of a driver result (`{ 0: id, 3: id }`) as a list. */
export function idsOf(map: unknown): unknown[] {
  if (!isPlainObject(map)) return []
  return Object.values(map).filter((id) => id !== undefined && id !== null)
}

export function isPlainObject(value: unknown): value is Row {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function isOperatorObject(value: unknown): value is Row {
  return isPlainObject(value) && Object.keys(value).some((k) => k.startsWith('$'))
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i)
}
