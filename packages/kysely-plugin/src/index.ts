export { withCutover, type CutoverDialectOptions } from './dialect/cutover-dialect.js'
export { KyselyTableStore, type KyselyTableStoreOptions } from './store/kysely-table-store.js'
export type { MigratedTableConfig, RawWritePolicy } from './dialect/migrated-tables.js'
export { asStoreQuery } from './store/store-query.js'
