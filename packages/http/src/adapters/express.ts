import type { Request, RequestHandler, Response } from 'express'
import type { CompatApi } from '../api/compat-api.js'
import type { CompatResponse } from '../api/request.js'
import { COMPAT_ERROR_CODES, HttpError } from '../versioning/http-error.js'
import { readJsonBody } from './read-body.js'

/**
 * The compatibility layer as Express (5) middleware: `app.use('/api', compatExpress(api))`. Uses
 * `req.body` when a body parser ran, and reads the JSON body itself otherwise.
 */
export function compatExpress(api: CompatApi): RequestHandler {
  return async (req: Request, res: Response) => {
    let body: unknown
    try {
      body = req.body !== undefined ? req.body : await readJsonBody(req)
    } catch (error) {
      const refused = error instanceof HttpError ? error : new HttpError(400, COMPAT_ERROR_CODES.invalidBody, 'the body could not be read', [], { cause: error })
      return send(res, { status: refused.status, headers: {}, body: refused.toBody(), contentType: 'application/json; charset=utf-8' })
    }
    send(res, await api.handle({ method: req.method, url: req.url, header: (name) => req.get(name), body }))
  }
}

function send(res: Response, response: CompatResponse): void {
  res.status(response.status).set(response.headers)
  if (response.status === 204 || response.body === undefined) return void res.end()
  res.type(response.contentType).send(typeof response.body === 'string' ? response.body : JSON.stringify(response.body))
}
