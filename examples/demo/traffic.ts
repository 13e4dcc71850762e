/**
 * Simulated traffic of the demo application: reads by user (each request carries the user as its
 * routing key), updates, inserts and appointment bookings, through the application's own Kysely
 * (wrapped by Cutover). `run(ms)` keeps a few requests in flight for that long.
 */
import { withCutoverContext } from '@cutover/core'
import type { Kysely } from 'kysely'
import { messyTimestamp } from './model.js'

export interface TrafficCounts {
  requests: number
  failed: number
}

export class Traffic {
  readonly counts: TrafficCounts = { requests: 0, failed: 0 }
  #n = 0
  #nextUser: number

  /** `app` speaks the old shape (until cutover); `appV2` the new one (after). */
  constructor(
    private readonly app: Kysely<any>,
    private readonly appV2: Kysely<any>,
    private readonly users: number,
  ) {
    this.#nextUser = users + 1
  }

  /** Which users schema the application writes: old until the users cutover, new after. */
  writesNew = false
  /** Once the booking form validates its input, no more free-text timestamps arrive. */
  formsFixed = false

  async run(ms: number, concurrency = 4): Promise<void> {
    const until = Date.now() + ms
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < until) await this.#request()
      }),
    )
  }

  async #request(): Promise<void> {
    const n = ++this.#n
    const user = 1 + ((n * 7919) % this.users)
    this.counts.requests++
    try {
      await withCutoverContext({ routingKey: user }, () => this.#pick(n, user))
    } catch {
      this.counts.failed++
    }
  }

  #pick(n: number, user: number): Promise<unknown> {
    const kind = n % 20
    if (kind < 13) return this.#readUser(user)
    if (kind < 16) return this.#renameUser(user, n)
    if (kind < 17) return this.#addUser()
    return this.#book(n, user)
  }

  #readUser(user: number): Promise<unknown> {
    return this.app.selectFrom('users').selectAll().where('user_id', '=', user).executeTakeFirst()
  }

  #renameUser(user: number, n: number): Promise<unknown> {
    return this.writesNew
      ? this.appV2.updateTable('users').set({ first_name: `Renamed${n}`, last_name: 'Person' }).where('id', '=', user).execute()
      : this.app.updateTable('users').set({ full_name: `Renamed${n} Person` }).where('user_id', '=', user).execute()
  }

  #addUser(): Promise<unknown> {
    const id = this.#nextUser++
    return this.writesNew
      ? this.appV2.insertInto('users').values({ id, first_name: 'New', last_name: `User${id}`, email: `n${id}@example.com` }).execute()
      : this.app.insertInto('users').values({ user_id: id, full_name: `New User${id}`, email: `n${id}@example.com` }).execute()
  }

  /** Appointments stay on the old schema: their own migration is still in `shadow`. */
  #book(n: number, user: number): Promise<unknown> {
    const startsAt = this.formsFixed ? '2025-02-03 10:00' : messyTimestamp(n)
    return this.app.insertInto('appointments').values({ id: 100_000 + n, user_id: user, starts_at: startsAt, note: 'booked online' }).execute()
  }
}
