/** A request as every adapter hands it over: the path below the mount point, headers, parsed JSON body. */
export interface CompatRequest {
  readonly method: string
  /** Below the mount point, with the query string: `/v1/users/5`, `/users?limit=10`. */
  readonly url: string
  /** Header value by lower-case name. */
  readonly header: (name: string) => string | undefined
  readonly body: unknown
}

/** What the adapter sends back. `body` is JSON unless `contentType` says otherwise (the changelog page). */
export interface CompatResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: unknown
  readonly contentType: string
}

export function json(status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): CompatResponse {
  return { status, headers, body, contentType: 'application/json; charset=utf-8' }
}
