import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { CompatApi } from '../api/compat-api.js'
import { COMPAT_ERROR_CODES, HttpError } from '../versioning/http-error.js'
import { parseJson } from './read-body.js'

/**
 * The compatibility layer as a Fastify (5) plugin: `app.register(compatFastify, { api, prefix: '/api' })`.
 * Fastify parses the JSON body; the routes answer every method below the prefix.
 */
export const compatFastify: FastifyPluginAsync<{ readonly api: CompatApi }> = async (fastify, options) => {
  const prefix = fastify.prefix
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const response = await options.api.handle({
      method: request.method,
      url: request.url.slice(prefix.length) || '/',
      header: (name) => {
        const value = request.headers[name.toLowerCase()]
        return Array.isArray(value) ? value.join(', ') : value
      },
      body: request.body,
    })
    reply.code(response.status).headers(response.headers)
    if (response.status === 204 || response.body === undefined) return reply.send()
    return reply.type(response.contentType).send(typeof response.body === 'string' ? response.body : JSON.stringify(response.body))
  }
  // In this plugin's scope only: JSON parsed by the compatibility layer, so a malformed body gets
  // the same error body as in every other adapter.
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, text, done) => {
    try {
      done(null, parseJson(text as string))
    } catch (error) {
      done(error as Error, undefined)
    }
  })
  fastify.setErrorHandler((failure, _request, reply) => {
    const error = failure as Error & { statusCode?: number }
    const refused = error instanceof HttpError ? error : new HttpError(error.statusCode ?? 500, COMPAT_ERROR_CODES.invalidBody, error.message)
    return reply.code(refused.status).type('application/json; charset=utf-8').send(JSON.stringify(refused.toBody()))
  })
  fastify.all('/', handler)
  fastify.all('/*', handler)
}
