import type { DatabaseConnection, Driver, QueryCompiler, TransactionSettings } from 'kysely'
import { CutoverConnection, type Interception } from './cutover-connection.js'

type CompileQuery = QueryCompiler['compileQuery']

/**
 * Wraps a dialect's `Driver`: connections come out wrapped (one wrapper per real connection, so
 * a transaction's state follows the connection), and transaction control is forwarded to the real
 * driver with the real connection, then recorded on the wrapper. The optional savepoint methods
 * exist exactly when the real driver has them, because Kysely checks for their presence.
 */
export class CutoverDriver implements Driver {
  readonly #inner: Driver
  readonly #interception: Interception
  readonly #wrappers = new WeakMap<DatabaseConnection, CutoverConnection>()

  savepoint?: (connection: DatabaseConnection, name: string, compileQuery: CompileQuery) => Promise<void>
  rollbackToSavepoint?: (connection: DatabaseConnection, name: string, compileQuery: CompileQuery) => Promise<void>
  releaseSavepoint?: (connection: DatabaseConnection, name: string, compileQuery: CompileQuery) => Promise<void>

  constructor(inner: Driver, interception: Interception) {
    this.#inner = inner
    this.#interception = interception
    const { savepoint, rollbackToSavepoint, releaseSavepoint } = inner
    if (savepoint) {
      this.savepoint = async (connection, name, compileQuery) => {
        await savepoint.call(inner, unwrap(connection), name, compileQuery)
        asCutover(connection)?.savepoint(name)
      }
    }
    if (rollbackToSavepoint) {
      this.rollbackToSavepoint = async (connection, name, compileQuery) => {
        await rollbackToSavepoint.call(inner, unwrap(connection), name, compileQuery)
        asCutover(connection)?.rolledBackToSavepoint(name)
      }
    }
    if (releaseSavepoint) {
      this.releaseSavepoint = async (connection, name, compileQuery) => {
        await releaseSavepoint.call(inner, unwrap(connection), name, compileQuery)
        asCutover(connection)?.releasedSavepoint(name)
      }
    }
  }

  init(): Promise<void> {
    return this.#inner.init()
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const connection = await this.#inner.acquireConnection()
    let wrapper = this.#wrappers.get(connection)
    if (!wrapper) this.#wrappers.set(connection, (wrapper = new CutoverConnection(connection, this.#interception)))
    return wrapper
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    await this.#inner.beginTransaction(unwrap(connection), settings)
    asCutover(connection)?.begin()
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await this.#inner.commitTransaction(unwrap(connection))
    } catch (error) {
      asCutover(connection)?.rolledBack()
      throw error
    }
    asCutover(connection)?.committed()
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await this.#inner.rollbackTransaction(unwrap(connection))
    } finally {
      asCutover(connection)?.rolledBack()
    }
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    // A connection going back to the pool with a transaction still open (a raw BEGIN never ended)
    // is rolled back by nobody we can see; forget its writes rather than mirror them later.
    asCutover(connection)?.rolledBack()
    return this.#inner.releaseConnection(unwrap(connection))
  }

  destroy(): Promise<void> {
    return this.#inner.destroy()
  }
}

function asCutover(connection: DatabaseConnection): CutoverConnection | undefined {
  return connection instanceof CutoverConnection ? connection : undefined
}

function unwrap(connection: DatabaseConnection): DatabaseConnection {
  return connection instanceof CutoverConnection ? connection.inner : connection
}

