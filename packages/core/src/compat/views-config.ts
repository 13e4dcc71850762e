import type { Kysely } from 'kysely'
import { ConfigError } from '../model/errors.js'
import type { FieldMap } from '../model/field-rule.js'
import type { Migration } from '../model/migration.js'
import { CompatibilityViews } from './compatibility-views.js'
import type { CompatibilityViewDefinition } from './view-definition.js'

/**
 * The compatibility views of one migration, as a config module declares them under `views`
 * (keyed by migration name). `fieldMap` defaults to the migration mapper's field map.
 *
 *     views: { customers: { views: [{ view: 'customers', table: 'accounts', where: { account_type: 'customer' } }] } }
 */
export interface MigrationViewsSettings {
  readonly views: readonly (Omit<CompatibilityViewDefinition, 'fieldMap'> & { readonly fieldMap?: FieldMap })[]
  /** The new database, where the views go. Default: the config's `control` database. */
  readonly database?: Kysely<any>
}

/** A config module that declares views: `CutoverConfig & ViewsConfig`. */
export interface ViewsConfig {
  readonly views?: Readonly<Record<string, MigrationViewsSettings>>
}

/** The migration's views, each with a field map, checked; a `ConfigError` names what is missing. */
export function migrationViews(migration: Migration<any, any>, settings: MigrationViewsSettings | undefined): CompatibilityViews {
  if (!settings || settings.views.length === 0) {
    throw new ConfigError([
      { source: `views.${migration.name}`, value: undefined, message: `no compatibility views declared for migration "${migration.name}": add views.${migration.name} to the config` },
    ])
  }
  const fieldMap = migration.mapper.fieldMap as FieldMap | undefined
  return new CompatibilityViews(
    settings.views.map((view) => {
      const map = view.fieldMap ?? fieldMap
      if (!map) {
        throw new ConfigError([
          { source: `views.${migration.name}.${view.view}`, value: undefined, message: `view "${view.view}" needs a field map: the mapper of "${migration.name}" was not built with fieldMapper` },
        ])
      }
      return { ...view, fieldMap: map }
    }),
  )
}
