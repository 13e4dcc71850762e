import type { DatabaseConnection, Driver, QueryCompiler, TransactionSettings } from 'kysely'
import { CutoverConnection, type Interception, type TransactionStatement } from './cutover-connection.js'

type CompileQuery = QueryCompiler['compileQuery']

/**
 * Wraps a dialect's `Driver`: connections come out wrapped (one wrapper per real connection, so
 * a transaction's state follows the connection), and transaction control is run by the real driver
 * on the wrapper's `view` of the real connection, so that its BEGIN, COMMIT, ROLLBACK and savepoint
 * statements pass through the wrapper (and Kysely's log) like any other, and are recorded there.
 * The optional savepoint methods exist exactly when the real driver has them, because Kysely
 * checks for their presence.
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
      this.savepoint = (connection, name, compileQuery) =>
        control(connection, { kind: 'savepoint', name }, (real) => savepoint.call(inner, real, name, compileQuery))
    }
    if (rollbackToSavepoint) {
      this.rollbackToSavepoint = (connection, name, compileQuery) =>
        control(connection, { kind: 'rollback-to', name }, (real) => rollbackToSavepoint.call(inner, real, name, compileQuery))
    }
    if (releaseSavepoint) {
      this.releaseSavepoint = (connection, name, compileQuery) =>
        control(connection, { kind: 'release', name }, (real) => releaseSavepoint.call(inner, real, name, compileQuery))
    }
  }

  init(): Promise<void> {
    return this.#inner.init()
  }

  // Every query acquires a connection: a `then` rather than an `async` function spares it a tick.
  acquireConnection(): Promise<DatabaseConnection> {
    return this.#inner.acquireConnection().then(this.#wrap)
  }

  readonly #wrap = (connection: DatabaseConnection): CutoverConnection => {
    let wrapper = this.#wrappers.get(connection)
    if (!wrapper) this.#wrappers.set(connection, (wrapper = new CutoverConnection(connection, this.#interception)))
    return wrapper
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return control(connection, { kind: 'begin' }, (real) => this.#inner.beginTransaction(real, settings))
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return control(connection, { kind: 'commit' }, (real) => this.#inner.commitTransaction(real))
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return control(connection, { kind: 'rollback' }, (real) => this.#inner.rollbackTransaction(real))
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    // A connection going back to the pool with a transaction still open (a raw BEGIN never ended)
    // is rolled back by nobody we can see; forget its writes rather than mirror them later.
    if (connection instanceof CutoverConnection) connection.rolledBack()
    return this.#inner.releaseConnection(unwrap(connection))
  }

  destroy(): Promise<void> {
    return this.#inner.destroy()
  }
}

/** Transaction control on a wrapped connection goes through it; on any other, straight to the driver. */
function control(connection: DatabaseConnection, statement: TransactionStatement, run: (connection: DatabaseConnection) => Promise<void>): Promise<void> {
  return connection instanceof CutoverConnection ? connection.control(statement, run) : run(connection)
}

function unwrap(connection: DatabaseConnection): DatabaseConnection {
  return connection instanceof CutoverConnection ? connection.inner : connection
}
