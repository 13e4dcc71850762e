/**
 * The framework-free version chain: round trips of lossless steps (property tests), several
 * steps in a row, error paths migrated back, and what is refused or reported at definition time.
 */
import { ConfigError, drop, fieldMapper, rename, copy, type LogFields, type Logger } from '@cutover/core'
import { BodyValidationError, createCompatApi, OldShapeUsage, defineVersionChain, versionStep, type ResourceHandlers } from '@cutover/http'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { UserV2, usersChain, usersV1Mapper } from './fixtures/compat-users-api.js'

const word = fc.stringMatching(/^[A-Za-z\u00c0-\u017f'-]{1,12}$/)
const v1Body = fc.record({
  id: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  full_name: fc.tuple(word, fc.option(fc.array(word, { minLength: 1, maxLength: 3 }).map((w) => w.join(' ')), { nil: undefined })).map(([first, rest]) => (rest ? `${first} ${rest}` : first)),
  email: fc.tuple(fc.stringMatching(/^[a-z0-9]{1,10}$/), fc.stringMatching(/^[a-z]{1,10}$/)).map(([user, host]) => `${user}@${host}.example`),
  active: fc.boolean(),
})

const UserV3 = z.object({ id: z.number().int(), first_name: z.string().min(1), last_name: z.string().min(1).nullable(), email_address: z.email(), status: z.enum(['active', 'disabled']) })
const v2ToV3 = fieldMapper({ old: UserV2, new: UserV3, fields: [copy('id'), copy('first_name'), copy('last_name'), rename('email', 'email_address'), copy('status')] })
const threeVersions = () =>
  defineVersionChain({
    resource: 'users',
    head: { version: '3' },
    steps: [
      versionStep({ version: '1', mapper: usersV1Mapper, description: 'full_name split' }),
      versionStep({ version: '2', mapper: v2ToV3, description: 'email renamed email_address' }),
    ],
  })

function capturingLogger(): Logger & { warnings: { message: string; fields?: LogFields }[] } {
  const warnings: { message: string; fields?: LogFields }[] = []
  return { warnings, debug() {}, info() {}, error() {}, warn: (message, fields) => void warnings.push({ message, ...(fields ? { fields } : {}) }) }
}

describe('version chain', () => {
  it('a lossless step round-trips every valid v1 body: toV1(fromV1(body)) is the body', () => {
    const chain = usersChain()
    expect(chain.lossySteps).toEqual([])
    fc.assert(fc.property(v1Body, (body) => void expect(chain.toV1(chain.fromV1(body))).toEqual(body)), { numRuns: 300 })
  })

  it('migrateBody carries webhooks and queued messages across several steps, either way, losslessly', () => {
    const chain = threeVersions()
    fc.assert(
      fc.property(v1Body, (body) => {
        const v3 = chain.migrateBody(body, { from: '1', to: '3' })
        expect(Object.keys(v3).sort()).toEqual(['email_address', 'first_name', 'id', 'last_name', 'status'])
        expect(chain.migrateBody(v3, { from: '3', to: '1' })).toEqual(body)
        expect(chain.migrateBody(v3, { from: '3', to: '2' })).toEqual(chain.migrateBody(body, { from: '1', to: '2' }))
      }),
      { numRuns: 200 },
    )
  })

  it('an invalid body lists every bad field by its path in the version it was sent in, even when a later step refuses it', () => {
    const chain = threeVersions()
    const invalid = (fn: () => unknown) => {
      try {
        fn()
      } catch (error) {
        expect(error).toBeInstanceOf(BodyValidationError)
        return (error as BodyValidationError).fields.map((f) => f.path).sort()
      }
      throw new Error('accepted an invalid body')
    }
    expect(invalid(() => chain.fromV1({ id: 'x', full_name: 3, email: 'nope' }))).toEqual(['active', 'email', 'full_name', 'id'])
    // "Ada " is a valid v1 full_name but splits into an empty last_name, which v2 refuses: reported as full_name.
    expect(invalid(() => chain.fromV1({ id: 1, full_name: 'Ada ', email: 'a@b.example', active: true }))).toEqual(['full_name'])
    expect(invalid(() => chain.fromVersion('3', { id: 1, first_name: '', last_name: null, email_address: 'x', status: 'active' }))).toEqual(['email_address', 'first_name'])
  })

  it('error bodies written in HEAD\'s terms are migrated back step by step to the client\'s field names', () => {
    const body = { error: { code: 'TAKEN', message: 'taken', fields: [{ path: 'email_address', message: 'is taken' }, { path: 'last_name', message: 'too long' }, { path: 'status', message: 'no' }] } }
    expect(threeVersions().migrateError(body, '1').error.fields.map((f) => f.path)).toEqual(['email', 'full_name', 'active'])
    expect(threeVersions().migrateError(body, '2').error.fields.map((f) => f.path)).toEqual(['email', 'last_name', 'status'])
  })

  it('a step that loses data is reported when the chain is defined, naming the rule', () => {
    const logger = capturingLogger()
    const lossy = fieldMapper({ old: z.object({ id: z.number(), nickname: z.string(), email: z.string() }), new: z.object({ id: z.number(), email: z.string() }), fields: [copy('id'), copy('email'), drop('nickname', '')] })
    const chain = defineVersionChain({ resource: 'people', head: { version: '2' }, steps: [versionStep({ version: '1', mapper: lossy, description: 'nickname removed' })], logger })
    expect(chain.lossySteps).toEqual([{ version: '1', losses: ['drop nickname → (none) is not restored going back'] }])
    expect(logger.warnings).toEqual([{ message: expect.stringContaining('loses data'), fields: { resource: 'people', version: '1', losses: chain.lossySteps[0]!.losses } }])
    const quiet = capturingLogger()
    defineVersionChain({ ...{ resource: 'users', head: { version: '2' } }, steps: [versionStep({ version: '1', mapper: usersV1Mapper, description: 'split' })], logger: quiet })
    expect(quiet.warnings).toEqual([])
  })

  it('accepting two shapes that cannot be told apart by schema is refused at definition time', () => {
    const V1 = z.object({ id: z.number(), email: z.string() })
    const V2 = z.object({ id: z.number(), email: z.string(), nickname: z.string().optional() })
    const mapper = fieldMapper({ old: V1, new: V2, fields: [copy('id'), copy('email')] })
    const define = () => defineVersionChain({ resource: 'people', head: { version: '2' }, steps: [versionStep({ version: '1', mapper, description: 'nickname added' })], acceptBodiesIn: ['1'] })
    expect(define).toThrow(ConfigError)
    expect(define).toThrow(/versions 2 and 1 cannot be told apart by schema/)
    expect(() => defineVersionChain({ resource: 'people', head: { version: '2' }, steps: [versionStep({ version: '1', mapper, description: 'x' })], acceptBodiesIn: ['9'] })).toThrow(/not a version of the chain/)
  })

  it('a body matching no accepted shape is refused with the issues of the closest one', () => {
    const chain = usersChain()
    expect(chain.detect({ id: 1, full_name: 'Ada', email: 'a@b.example', active: true }).version).toBe('1')
    expect(chain.detect({ id: 1, first_name: 'Ada', last_name: null, email: 'a@b.example', status: 'active' }).version).toBe('2')
    expect(() => chain.detect({ id: 1, full_name: 'Ada', email: 'a@b.example' })).toThrow(expect.objectContaining({ version: '1', fields: [expect.objectContaining({ path: 'active' })] }))
  })
})

describe('old-shape use', () => {
  it('is counted per client, heaviest first, in bounded memory: clients beyond the cap are counted together', () => {
    const usage = new OldShapeUsage({ maxClients: 2 })
    const at = new Date()
    for (const client of ['a', 'b', 'b', 'c', 'd', 'a', 'b']) usage.record({ client, version: '1', resource: 'users', at })
    expect(usage.heaviest().map((u) => [u.client, u.requests])).toEqual([['b', 3], ['(other)', 2], ['a', 2]])
    expect(usage.metrics.counter('compat.old_shape', { resource: 'users', version: '1' })).toBe(7)
  })
})

describe('version lifecycle at start-up', () => {
  const handlers = {} as ResourceHandlers
  it('a Sunset before the Deprecation, a bad date, a bad link and an unknown version are all one ConfigError', () => {
    const start = () =>
      createCompatApi({
        resources: [{ chain: usersChain(), handlers }],
        versions: { '1': { deprecation: '2026-06-01', sunset: '2026-05-01', link: 'example.com/guide' }, '2': { sunset: 'soon' }, '7': {} },
      })
    expect(start).toThrow(ConfigError)
    try {
      start()
    } catch (error) {
      expect((error as ConfigError).problems.map((p) => p.source).sort()).toEqual(['versions.1.link', 'versions.1.sunset', 'versions.2.sunset', 'versions.7.'])
      expect((error as ConfigError).message).toMatch(/Sunset \(2026-05-01T00:00:00.000Z\) is before Deprecation/)
    }
    expect(() => createCompatApi({ resources: [{ chain: usersChain(), handlers }], versions: { '1': { deprecation: '2026-06-01', sunset: '2026-09-01' } } })).not.toThrow()
  })
})
