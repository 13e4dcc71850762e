import type { Row } from '@cutover/core'
import { COMPAT_ERROR_CODES, HttpError } from '../versioning/http-error.js'
import type { VersionChain } from '../versioning/version-chain.js'
import { json, type CompatResponse } from './request.js'
import type { ResourceHandlers } from './resource.js'

/** One request against one resource, with its version settled. */
export interface ResourceCall {
  readonly chain: VersionChain
  readonly handlers: ResourceHandlers
  /** The version the response is written in. */
  readonly version: string
  readonly key: string | undefined
  readonly body: unknown
  readonly query: URLSearchParams
  readonly maxPageSize: number
  /** Told which version a body was written in, when HEAD's endpoint accepted an older shape. */
  readonly onBodyVersion: (version: string) => void
}

type Method = (call: ResourceCall) => Promise<CompatResponse>

/** The REST verbs, as data: `[method, has key]` → what it does. */
export const RESOURCE_METHODS: Readonly<Record<string, Method>> = {
  'GET collection': list,
  'GET item': async (call) => json(200, call.chain.toVersion(call.version, await existing(call))),
  'POST collection': async (call) => {
    const record = await incoming(call, await withNewKey(call))
    return json(201, call.chain.toVersion(call.version, await call.handlers.create(record)))
  },
  'PUT item': async (call) => {
    const current = await existing(call)
    const record = await incoming(call, { ...asObject(call), [call.chain.key]: current[call.chain.key] })
    return json(200, call.chain.toVersion(call.version, await call.handlers.replace(call.key as string, record)))
  },
  'PATCH item': patch,
  'DELETE item': async (call) => {
    if (!(await call.handlers.remove(call.key as string))) throw notFound(call)
    return json(204, undefined)
  },
}

async function list(call: ResourceCall): Promise<CompatResponse> {
  const limit = Math.min(Math.max(Number(call.query.get('limit') ?? call.maxPageSize) || call.maxPageSize, 1), call.maxPageSize)
  const after = call.query.get('after') ?? undefined
  const rows = await call.handlers.list({ limit, ...(after === undefined ? {} : { after }) })
  const data = rows.map((row) => call.chain.toVersion(call.version, row))
  const last = rows.at(-1)
  return json(200, { data, next: rows.length === limit && last ? String(last[call.chain.key]) : null })
}

/**
 * PATCH is answered by merging: the stored record shown in the body's version, the patch laid
 * over it, and the result converted forward as a whole. The mapper then sees complete records
 * only, and a v1 patch of `full_name` rewrites `first_name` and `last_name` together.
 */
async function patch(call: ResourceCall): Promise<CompatResponse> {
  const current = await existing(call)
  const body = asObject(call)
  const bodyVersion = call.version === call.chain.head && call.chain.accepted.length > 1 ? call.chain.detectPartial(body) : call.version
  if (bodyVersion !== call.version) call.onBodyVersion(bodyVersion)
  const merged = { ...call.chain.toVersion(bodyVersion, current), ...body, [call.chain.key]: current[call.chain.key] }
  const record = call.chain.fromVersion(bodyVersion, merged)
  return json(200, call.chain.toVersion(call.version, await call.handlers.replace(call.key as string, record)))
}

/** A whole body → HEAD: detected by schema on HEAD's endpoint when older shapes are accepted there. */
async function incoming(call: ResourceCall, body: Row): Promise<Row> {
  if (call.version !== call.chain.head || call.chain.accepted.length === 1) return call.chain.fromVersion(call.version, body)
  const detected = call.chain.detect(body)
  if (detected.version !== call.chain.head) call.onBodyVersion(detected.version)
  return detected.record
}

async function withNewKey(call: ResourceCall): Promise<Row> {
  const body = asObject(call)
  if (body[call.chain.key] !== undefined || !call.handlers.newKey) return body
  return { ...body, [call.chain.key]: await call.handlers.newKey() }
}

async function existing(call: ResourceCall): Promise<Row> {
  const current = await call.handlers.get(call.key as string)
  if (!current) throw notFound(call)
  return current
}

function asObject(call: ResourceCall): Row {
  if (call.body && typeof call.body === 'object' && !Array.isArray(call.body)) return call.body as Row
  throw new HttpError(400, COMPAT_ERROR_CODES.invalidBody, `the ${call.chain.resource} body must be a JSON object`, [{ path: '', message: 'expected a JSON object' }])
}

function notFound(call: ResourceCall): HttpError {
  return new HttpError(404, COMPAT_ERROR_CODES.notFound, `no ${call.chain.resource} with ${call.chain.key} ${call.key}`, [], { ...(call.key === undefined ? {} : { key: call.key }) })
}
