import type { Context, MiddlewareHandler } from 'hono'
import type { CompatApi } from '../api/compat-api.js'
import { HttpError } from '../versioning/http-error.js'
import { parseJson } from './read-body.js'

/**
 * The compatibility layer as a Hono (4) handler: `app.all('/api/*', compatHono(api, { prefix: '/api' }))`.
 * Runs wherever Hono does (Node through `@hono/node-server`, Bun, Workers): it uses only `Request`.
 */
export function compatHono(api: CompatApi, options: { readonly prefix?: string } = {}): MiddlewareHandler {
  const prefix = options.prefix ?? ''
  return async (c: Context) => {
    const url = new URL(c.req.url)
    let body: unknown
    try {
      body = ['GET', 'HEAD', 'DELETE'].includes(c.req.method) ? undefined : parseJson(await c.req.text())
    } catch (error) {
      return c.json((error as HttpError).toBody(), 400)
    }
    const response = await api.handle({
      method: c.req.method,
      url: `${url.pathname.slice(prefix.length) || '/'}${url.search}`,
      header: (name) => c.req.header(name),
      body,
    })
    const payload = response.status === 204 || response.body === undefined ? null : typeof response.body === 'string' ? response.body : JSON.stringify(response.body)
    return new Response(payload, { status: response.status, headers: { ...response.headers, ...(payload === null ? {} : { 'content-type': response.contentType }) } })
  }
}
