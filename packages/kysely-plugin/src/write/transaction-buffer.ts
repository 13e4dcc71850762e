import type { ChangeEvent } from '@cutover/core'
import type { MigratedTable } from '../dialect/migrated-tables.js'

/** A write seen inside a transaction, handed to the core only once the transaction commits. */
export type PendingWrite =
  | { readonly kind: 'write'; readonly table: MigratedTable; readonly event: ChangeEvent }
  | { readonly kind: 'unmirrored'; readonly table: MigratedTable; readonly detail: string }
  /** A write the change log captures, of keys the wrapper does not know (`unkeyed` plan). */
  | { readonly kind: 'unkeyed'; readonly table: MigratedTable }

/**
 * The writes of one open transaction on one connection. Savepoints mark positions in it, so
 * `rollback to savepoint` drops exactly the writes made after the savepoint, as PostgreSQL does.
 */
export class TransactionBuffer {
  readonly #writes: PendingWrite[] = []
  readonly #savepoints: { readonly name: string; readonly at: number }[] = []

  add(write: PendingWrite): void {
    this.#writes.push(write)
  }

  /** A savepoint with a name already used shadows the older one until it is released. */
  savepoint(name: string): void {
    this.#savepoints.push({ name, at: this.#writes.length })
  }

  /** Drops the writes after the savepoint; the savepoint itself stays, later ones go. */
  rollbackTo(name: string): void {
    const index = this.#lastIndexOf(name)
    if (index < 0) return
    this.#writes.length = (this.#savepoints[index] as { at: number }).at
    this.#savepoints.length = index + 1
  }

  /** Forgets the savepoint (and any after it); its writes stay part of the transaction. */
  release(name: string): void {
    const index = this.#lastIndexOf(name)
    if (index >= 0) this.#savepoints.length = index
  }

  get writes(): readonly PendingWrite[] {
    return this.#writes
  }

  #lastIndexOf(name: string): number {
    for (let i = this.#savepoints.length - 1; i >= 0; i--) if (this.#savepoints[i]?.name === name) return i
    return -1
  }
}
