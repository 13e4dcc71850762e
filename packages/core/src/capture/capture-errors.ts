import { CutoverError } from '../model/errors.js'

/** The database role may not install or remove a capture: the message names the missing privilege. */
export class CapturePrivilegeError extends CutoverError {
  readonly code = 'CAPTURE_PRIVILEGE_MISSING'

  constructor(
    readonly migration: string,
    readonly table: string,
    /** E.g. `TRIGGER on table public.people`, `CREATE on schema cutover`. */
    readonly privilege: string,
    readonly role: string,
    options: { cause?: unknown } = {},
  ) {
    super(
      `Migration "${migration}": role "${role}" lacks ${privilege}, needed to capture changes of ${table}. ` +
        `Grant it (or run \`cutover capture install ${migration}\` as the table's owner), or use capture: 'interception'.`,
      options,
    )
  }
}

/** A migration asks for change-log capture of a side whose store is not a PostgreSQL table. */
export class CaptureUnsupportedError extends CutoverError {
  readonly code = 'CAPTURE_UNSUPPORTED'

  constructor(
    readonly migration: string,
    readonly side: 'old' | 'new',
    readonly store: string,
  ) {
    super(`Migration "${migration}": the ${side} store ${store} cannot be captured by a change log (only PostgreSQL tables can); use capture: 'interception'.`)
  }
}

/** The table a capture is to be installed on does not exist (or is not visible to the role). */
export class CaptureTableMissingError extends CutoverError {
  readonly code = 'CAPTURE_TABLE_MISSING'

  constructor(
    readonly migration: string,
    readonly table: string,
  ) {
    super(`Migration "${migration}": table ${table} does not exist or is not visible to this role; create it before installing capture.`)
  }
}
