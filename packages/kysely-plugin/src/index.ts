export { withCutover, type CutoverDialectOptions } from './cutover-dialect.js'
export { KyselyTableStore, type KyselyTableStoreOptions } from './kysely-table-store.js'
export type { MigratedTableConfig, RawWritePolicy } from './migrated-tables.js'
export { asStoreQuery } from './store-query.js'
