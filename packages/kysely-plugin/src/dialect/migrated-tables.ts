import { ConfigError, type Cutover, type KeyValue, type MigrationRuntime, type Side } from '@cutover/core'
import type { CompiledQuery, OperationNode, TableNode } from 'kysely'

/**
 * What to do with a raw `sql` write on a migrated table, whose keys the wrapper cannot see:
 * - `report` (default): count it (`write.unmirrored`) and log a warning naming the table;
 * - `ignore`: the application knows it is harmless (or mirrors it itself);
 * - a function returning the keys it touched, which are then mirrored like any other write
 *   (return `undefined` to fall back to `report`).
 */
export type RawWritePolicy = 'report' | 'ignore' | ((query: CompiledQuery) => readonly KeyValue[] | undefined)

/** One table the application's Kysely writes or reads that is a side of a migration. */
export interface MigratedTableConfig {
  /** The migration's name, as given to `createCutover`. */
  readonly migration: string
  /** Which side of the migration this table is. */
  readonly side: Side
  readonly rawWrites?: RawWritePolicy
}

/** A table of the configuration, resolved against the running `Cutover`. */
export interface MigratedTable {
  /** As configured: `users` or `schema.users`. */
  readonly name: string
  readonly runtime: MigrationRuntime
  readonly side: Side
  /** The key column of this side (the first key column of a composite key). */
  readonly key: string
  /** Every key column of this side, in key order: one, or those of a composite primary key. */
  readonly keys: readonly string[]
  readonly rawWrites: RawWritePolicy
}

/**
 * Finds the migrated table a query names. A configured `users` matches `users` and `public.users`
 * in queries; a configured `app.users` matches only `app.users` (the search path is not consulted).
 */
export class MigratedTables {
  readonly #byName = new Map<string, MigratedTable>()
  readonly #bySchema = new Map<string, Map<string, MigratedTable>>()
  readonly all: readonly MigratedTable[]

  constructor(cutover: Cutover, tables: Readonly<Record<string, MigratedTableConfig>>) {
    const problems: { source: string; value: unknown; message: string }[] = []
    for (const [name, config] of Object.entries(tables)) {
      const source = `withCutover.tables.${name}`
      if (!/^[^.]+(\.[^.]+)?$/.test(name)) problems.push({ source, value: name, message: `${source}: table must be "name" or "schema.name"` })
      if (config.side !== 'old' && config.side !== 'new') {
        problems.push({ source: `${source}.side`, value: config.side, message: `${source}.side must be "old" or "new"` })
        continue
      }
      let runtime: MigrationRuntime
      try {
        runtime = cutover.migration(config.migration)
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error
        problems.push({ source: `${source}.migration`, value: config.migration, message: `${source}.migration: ${error.problems[0]?.message ?? error.message}` })
        continue
      }
      const qualified = name.includes('.') ? name : `public.${name}`
      if (this.#byName.has(qualified)) problems.push({ source, value: name, message: `${source}: table named twice` })
      const key = runtime.migration.key[config.side]
      const composite = runtime.migration[config.side].keyFields
      const keys = Object.freeze(composite && composite.length > 1 ? [...composite] : [key])
      this.#byName.set(qualified, Object.freeze({ name, runtime, side: config.side, key, keys, rawWrites: config.rawWrites ?? 'report' }))
    }
    if (problems.length > 0) throw new ConfigError(problems)
    this.all = [...this.#byName.values()]
    for (const [qualified, table] of this.#byName) {
      const [schema, name] = qualified.split('.') as [string, string]
      const bySchema = this.#bySchema.get(schema) ?? new Map<string, MigratedTable>()
      this.#bySchema.set(schema, bySchema.set(name, table))
    }
  }

  /** The migrated table a `TableNode` names, if any. */
  ofTableNode(node: TableNode): MigratedTable | undefined {
    // Asked for every query's table: a lookup by name, without building a qualified string.
    const bySchema = this.#bySchema.get(node.table.schema?.name ?? 'public')
    return bySchema?.get(node.table.identifier.name)
  }

  /** The migrated table of a `TableNode` or `AliasNode(TableNode)`, with the name that qualifies its columns. */
  ofFromItem(node: OperationNode | undefined): { table: MigratedTable; tableNode: TableNode; qualifier: TableNode } | undefined {
    if (!node) return undefined
    if (node.kind === 'TableNode') {
      const tableNode = node as TableNode
      const table = this.ofTableNode(tableNode)
      return table ? { table, tableNode, qualifier: tableNode } : undefined
    }
    if (node.kind === 'AliasNode') {
      const alias = node as OperationNode & { node: OperationNode; alias: OperationNode }
      if (alias.node.kind !== 'TableNode' || alias.alias.kind !== 'IdentifierNode') return undefined
      const tableNode = alias.node as TableNode
      const table = this.ofTableNode(tableNode)
      const qualifier = { kind: 'TableNode', table: { kind: 'SchemableIdentifierNode', identifier: alias.alias } } as TableNode
      return table ? { table, tableNode, qualifier } : undefined
    }
    return undefined
  }

  /** The migrated table of a raw statement's `schema.table` text (quotes removed), if any. */
  ofName(name: string): MigratedTable | undefined {
    return this.#byName.get(name.includes('.') ? name : `public.${name}`)
  }
}
