import { AsyncLocalStorage } from 'node:async_hooks'

/** What a request tells Cutover about itself: whose data it is and who acts. */
export interface CutoverContext {
  /** Key that decides the read side in `ramp` (a user id, a tenant id). */
  readonly routingKey?: string | number | bigint
  readonly tenant?: string
  /** Who or what acts: recorded in audit entries. */
  readonly actor?: string
}

const storage = new AsyncLocalStorage<CutoverContext>()

/** Runs `fn` with `context` visible to every query it makes, however deep the call chain. */
export function withCutoverContext<T>(context: CutoverContext, fn: () => T): T {
  return storage.run(Object.freeze({ ...storage.getStore(), ...context }), fn)
}

/** The context of the running request, or an empty one outside any. */
export function currentCutoverContext(): CutoverContext {
  return storage.getStore() ?? EMPTY
}

const EMPTY: CutoverContext = Object.freeze({})
