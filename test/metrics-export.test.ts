/**
 * Cutover's metrics where teams look: a running instance (real PostgreSQL, the application's
 * Kysely through the plugin) is driven through writes, mirrored writes, a dead letter, compared reads
 * with a mismatch and a backfill; then its standalone `/metrics` endpoint is scraped over HTTP and the
 * OpenTelemetry metrics are read with the SDK's in-memory exporter.
 */
import { backfill, backfillProgressMetrics, exportMetricsToOpenTelemetry, prometheusMetrics, startMetricsServer, withCutoverContext } from '@cutover/core'
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KyselyTableStore } from '../packages/kysely-plugin/src/index.js'
import { createHarness, type Harness } from '../packages/kysely-plugin/test/harness.js'
import { peopleMapper } from './fixtures/people.js'

let h: Harness
let scrape: () => Promise<string>
let closeServer: () => Promise<void>
let metricsUrl: string
let otel: { exporter: InMemoryMetricExporter; reader: PeriodicExportingMetricReader; provider: MeterProvider }

beforeAll(async () => {
  h = await createHarness({
    prefix: 'cutover_metrics',
    oldDdl: [
      'create table people (id integer primary key, full_name text not null, email text not null, version integer not null default 1)',
      "insert into people select i, 'First' || i || ' Last', 'p' || i || '@example.com', 1 from generate_series(1, 300) i",
    ],
    // The new side refuses one email, so that one mirrored write is dead-lettered.
    newDdl: ["create table people_v2 (id integer primary key, first_name text not null, last_name text, email text not null check (email <> 'refused@example.com'), version integer not null)"],
    migrations: (old, neu) => [
      {
        name: 'people',
        old: new KyselyTableStore(old, 'people', 'id'),
        new: new KyselyTableStore(neu, 'people_v2', 'id'),
        mapper: peopleMapper,
        mirror: { retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 }, recheckDelayMs: false, lingerMs: 0 },
      },
    ],
    oldTables: { people: { migration: 'people', side: 'old' } },
    random: () => 0,
  })
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  const provider = new MeterProvider({ readers: [reader] })
  otel = { exporter, reader, provider }
  exportMetricsToOpenTelemetry(h.cutover, { meter: provider.getMeter('test') })
  const { registry } = prometheusMetrics(h.cutover)
  const server = await startMetricsServer({ registry, port: 0 })
  closeServer = server.close
  metricsUrl = server.url
  scrape = async () => {
    const response = await fetch(server.url)
    expect(response.headers.get('content-type')).toContain('text/plain')
    return response.text()
  }
  await runWorkload()
}, 120_000)

afterAll(async () => {
  await closeServer?.()
  await otel?.provider.shutdown()
  await h?.close()
})

async function runWorkload(): Promise<void> {
  const ctx = h.cutover
  await ctx.setPhase('people', 'shadow', { actor: 'test' })
  const summary = await backfill({ migration: ctx.migration('people').migration, control: h.old.db, onProgress: backfillProgressMetrics(ctx.metrics), batch: { initial: 100, min: 100, max: 100 } })
  expect(summary.counts.read).toBe(300)
  await h.app.insertInto('people').values({ id: 1001, full_name: 'New Person', email: 'new@example.com', version: 1 }).execute()
  await h.app.insertInto('people').values({ id: 1002, full_name: 'Refused Person', email: 'refused@example.com', version: 1 }).execute()
  await h.app.updateTable('people').set({ full_name: 'Changed Name' }).where('id', '=', 5).execute()
  await ctx.drain()
  await ctx.setPhase('people', 'compare', { actor: 'test', compareSample: 1 })
  // A mismatch on one field, then reads (each compared, since the sample is 1).
  await sql`update people_v2 set email = 'drifted@example.com' where id = 7`.execute(h.neu.db)
  for (const id of [5, 6, 7, 8]) {
    await withCutoverContext({ routingKey: String(id) }, () => h.app.selectFrom('people').selectAll().where('id', '=', id).execute())
  }
  await new Promise((resolve) => setTimeout(resolve, 300)) // comparisons run after the reads return
}

/** `name{a="b",…} value` lines of a Prometheus text exposition. */
function series(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
      if (!match) throw new Error(`not an exposition line: ${line}`)
      const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]))
      return { name: match[1] as string, labels, value: Number(match[3]) }
    })
}

function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  return series(text).find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
}

describe('Prometheus: a scrape of the running instance', () => {
  it('counts writes per migration and side, and mirrored writes with a duration histogram in seconds', async () => {
    const text = await scrape()
    expect(value(text, 'cutover_operations_total', { migration: 'people', side: 'old', operation: 'write', outcome: 'ok' })).toBe(3)
    expect(value(text, 'cutover_mirror_events_total', { migration: 'people', direction: 'old-to-new', event: 'enqueued' })).toBe(3)
    const count = value(text, 'cutover_operation_duration_seconds_count', { migration: 'people', side: 'new', operation: 'mirror_write' })
    expect(count).toBeGreaterThanOrEqual(1)
    const sum = value(text, 'cutover_operation_duration_seconds_sum', { migration: 'people', side: 'new', operation: 'mirror_write' }) as number
    // Seconds, not milliseconds: a mirrored write on loopback takes well under a second each.
    expect(sum / (count as number)).toBeLessThan(1)
    expect(value(text, 'cutover_operation_duration_seconds_bucket', { migration: 'people', operation: 'mirror_write', le: '+Inf' })).toBe(count)
    expect(value(text, 'cutover_mirror_lag_seconds_count', { migration: 'people', direction: 'old-to-new' })).toBeGreaterThanOrEqual(1)
  })

  it('counts dead letters by reason, compared reads by result and mismatches by field', async () => {
    const text = await scrape()
    expect(value(text, 'cutover_dead_letters_total', { migration: 'people', reason: 'STORE_FAILED' })).toBeGreaterThanOrEqual(1)
    expect(value(text, 'cutover_compare_reads_total', { migration: 'people', result: 'mismatch' })).toBe(1)
    expect(value(text, 'cutover_compare_reads_total', { migration: 'people', result: 'equal' })).toBe(3)
    expect(value(text, 'cutover_compare_mismatched_fields_total', { migration: 'people', field: 'email' })).toBe(1)
    expect(value(text, 'cutover_operations_total', { migration: 'people', side: 'old', operation: 'read', outcome: 'ok' })).toBe(4)
  })

  it('shows the phase, routed read share, guard state and queue depth as gauges read at the scrape', async () => {
    const text = await scrape()
    expect(value(text, 'cutover_phase', { migration: 'people' })).toBe(2) // compare
    expect(value(text, 'cutover_read_routed_share', { migration: 'people' })).toBe(0)
    expect(value(text, 'cutover_guard_tripped', { migration: 'people' })).toBe(0)
    expect(value(text, 'cutover_mirror_queue_depth', { migration: 'people', direction: 'old-to-new' })).toBe(0)
    await h.cutover.setPhase('people', 'ramp', { actor: 'test', readPercent: 25 })
    const after = await scrape()
    expect(value(after, 'cutover_phase', { migration: 'people' })).toBe(3)
    expect(value(after, 'cutover_read_routed_share', { migration: 'people' })).toBe(0.25)
  })

  it('counts backfill rows and its rate', async () => {
    const text = await scrape()
    expect(value(text, 'cutover_backfill_rows_total', { migration: 'people' })).toBe(300)
    expect(value(text, 'cutover_backfill_rate', { migration: 'people' })).toBeGreaterThan(0)
  })

  it('has no high-cardinality label: no keys, no tenants, only the documented label names', async () => {
    const allowed = new Set(['migration', 'side', 'operation', 'outcome', 'direction', 'event', 'reason', 'result', 'field', 'target', 'le'])
    const names = new Set(series(await scrape()).flatMap((s) => Object.keys(s.labels)))
    expect([...names].filter((n) => !allowed.has(n))).toEqual([])
    const values = new Set(series(await scrape()).flatMap((s) => Object.entries(s.labels).filter(([k]) => k !== 'le').map(([, v]) => v)))
    for (const key of ['5', '7', '1001', '1002']) expect(values.has(key)).toBe(false)
  })

  it('answers 404 off /metrics', async () => {
    expect((await fetch(new URL('/other', metricsUrl))).status).toBe(404)
  })
})

describe('OpenTelemetry: read with the SDK in-memory exporter', () => {
  const collect = async (): Promise<ResourceMetrics> => {
    await otel.reader.forceFlush()
    return otel.exporter.getMetrics().at(-1) as ResourceMetrics
  }
  const metric = (resource: ResourceMetrics, name: string) => resource.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name)

  it('exports cutover.operation.duration as a histogram in seconds with cutover.* attributes', async () => {
    const duration = metric(await collect(), 'cutover.operation.duration')
    expect(duration?.descriptor.unit).toBe('s')
    const point = duration?.dataPoints.find((p) => p.attributes['cutover.operation'] === 'mirror_write')
    expect(point?.attributes).toMatchObject({ 'cutover.migration': 'people', 'cutover.side': 'new' })
    const histogram = point?.value as { count: number; sum: number }
    expect(histogram.count).toBeGreaterThanOrEqual(1)
    expect(histogram.sum / histogram.count).toBeLessThan(1)
  })

  it('exports the compared reads, dead letters and the phase gauge with the same numbers as the scrape', async () => {
    const resource = await collect()
    const compared = metric(resource, 'cutover.compare.reads')?.dataPoints.find((p) => p.attributes['cutover.result'] === 'mismatch')
    expect(compared?.value).toBe(1)
    const dead = metric(resource, 'cutover.dead_letters')?.dataPoints.find((p) => p.attributes['cutover.reason'] === 'STORE_FAILED')
    expect(dead?.value).toBeGreaterThanOrEqual(1)
    const phase = metric(resource, 'cutover.phase')?.dataPoints.find((p) => p.attributes['cutover.migration'] === 'people')
    expect(phase?.value).toBe(3) // ramp, set by the previous describe
    expect(metric(resource, 'cutover.backfill.rows')?.dataPoints[0]?.value).toBe(300)
  })
})
