import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { CompatApi } from '../api/compat-api.js'

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
  fastify.all('/', handler)
  fastify.all('/*', handler)
}
