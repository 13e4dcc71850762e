export { KyselyTableStore, type KyselyTableStoreOptions } from './kysely-table-store.js'
export { asStoreQuery } from './store-query.js'
