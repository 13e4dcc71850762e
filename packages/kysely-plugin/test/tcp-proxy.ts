/** A loopback TCP proxy in front of PostgreSQL whose link can be cut, to make a database unreachable. */
import { createConnection, createServer, type Server, type Socket } from 'node:net'

export class TcpProxy {
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  /** `forward`: a working link; `blackhole`: connections are accepted and never answered. */
  mode: 'forward' | 'blackhole' = 'forward'

  private constructor(server: Server) {
    this.#server = server
  }

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = createServer()
    const proxy = new TcpProxy(server)
    server.on('connection', (client) => {
      proxy.#sockets.add(client)
      client.on('close', () => proxy.#sockets.delete(client))
      client.on('error', () => {})
      if (proxy.mode === 'blackhole') return
      const upstream = createConnection(target)
      proxy.#sockets.add(upstream)
      upstream.on('close', () => proxy.#sockets.delete(upstream))
      upstream.on('error', () => client.destroy())
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return proxy
  }

  get port(): number {
    return (this.#server.address() as { port: number }).port
  }

  /** Drops every open connection and swallows new ones. */
  cut(): void {
    this.mode = 'blackhole'
    for (const socket of this.#sockets) socket.destroy()
  }

  restore(): void {
    this.mode = 'forward'
    for (const socket of this.#sockets) socket.destroy() // the black-holed ones
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy()
    await new Promise((resolve) => this.#server.close(resolve))
  }
}
