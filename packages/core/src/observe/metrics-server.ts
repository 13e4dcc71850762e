import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'

/**
 * A small standalone HTTP server answering `GET /metrics` with the registry in Prometheus' text
 * format, for applications that do not already serve metrics. Anything else is 404.
 */
export async function startMetricsServer(options: { registry: Registry; port?: number; host?: string }): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
      response.writeHead(404).end()
      return
    }
    options.registry
      .metrics()
      .then((text) => response.writeHead(200, { 'content-type': options.registry.contentType }).end(text))
      .catch(() => response.writeHead(500).end())
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 9464, options.host ?? '127.0.0.1', () => resolve())
  })
  const address = server.address() as AddressInfo
  return {
    url: `http://${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
