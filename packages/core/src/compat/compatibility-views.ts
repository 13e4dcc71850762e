import { type Kysely, sql } from 'kysely'
import { defineCompatibilityView, type CompatibilityView, type CompatibilityViewDefinition } from './view-definition.js'
import { createViewStatements, dropViewStatements } from './view-sql.js'

/** What `apply` or `drop` did, for the CLI's `--json` and for logs. */
export interface ViewsResult {
  readonly action: 'apply' | 'drop'
  readonly views: readonly string[]
  readonly statements: number
}

/**
 * The writable compatibility views of one migration (one old table each; several when old tables
 * were merged into one new one). Applying is idempotent and all-or-nothing: every statement runs
 * in one transaction, under an advisory lock so two deploys applying at once do not interleave.
 */
export class CompatibilityViews {
  readonly views: readonly CompatibilityView[]

  constructor(definitions: readonly (CompatibilityViewDefinition | CompatibilityView)[]) {
    this.views = Object.freeze(definitions.map((d) => ('needsTriggers' in d ? d : defineCompatibilityView(d))))
  }

  /** The statements `apply` runs, in order. */
  createStatements(): string[] {
    return this.views.flatMap(createViewStatements)
  }

  dropStatements(): string[] {
    return this.views.flatMap(dropViewStatements)
  }

  /** A script a DBA can review and run with psql (it is wrapped in its own transaction). */
  sql(action: 'apply' | 'drop' = 'apply'): string {
    const statements = action === 'apply' ? this.createStatements() : this.dropStatements()
    return `begin;\n\n${statements.map((s) => `${s};`).join('\n\n')}\n\ncommit;\n`
  }

  apply(db: Kysely<any>): Promise<ViewsResult> {
    return this.#run(db, 'apply', this.createStatements())
  }

  drop(db: Kysely<any>): Promise<ViewsResult> {
    return this.#run(db, 'drop', this.dropStatements())
  }

  async #run(db: Kysely<any>, action: 'apply' | 'drop', statements: readonly string[]): Promise<ViewsResult> {
    await db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext('cutover.compatibility_views'))`.execute(trx)
      for (const statement of statements) await sql.raw(statement).execute(trx)
    })
    return { action, views: this.views.map((v) => (v.viewSchema ? `${v.viewSchema}.${v.view}` : v.view)), statements: statements.length }
  }
}

/** Shorthand for `new CompatibilityViews(definitions).sql()`. */
export function compatibilityViewsSql(definitions: readonly CompatibilityViewDefinition[]): string {
  return new CompatibilityViews(definitions).sql()
}
