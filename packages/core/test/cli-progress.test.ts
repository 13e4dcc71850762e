import { describe, expect, it } from 'vitest'
import { ProgressRenderer, progressLine } from '../src/cli/progress-renderer.js'

function sink(isTTY: boolean) {
  const chunks: string[] = []
  return { chunks, stream: { isTTY, columns: 120, write: (chunk: string) => chunks.push(chunk) > 0 } }
}

describe('ProgressRenderer', () => {
  it('draws one line in place on a terminal, with bar, count, rate, ETA and note', () => {
    const { chunks, stream } = sink(true)
    let now = 0
    const renderer = new ProgressRenderer(stream, { now: () => now })
    renderer.update({ label: 'users', done: 25_000, total: 100_000, rate: 5_000, note: 'throttled: rate-limit' })
    now = 50
    renderer.update({ label: 'users', done: 26_000, total: 100_000, rate: 5_000 }) // too soon: skipped
    renderer.done()
    expect(chunks).toHaveLength(2)
    expect(chunks[0]?.startsWith('\r\u001b[2K')).toBe(true)
    expect(chunks[0]?.slice(5)).toMatch(/^users {2}\[#+-+\] {3}25\.0% {2}25,000\/100,000 {2}5,000\/s {2}ETA 0:15 {2}throttled: rate-limit$/)
    expect(chunks[1]).toBe('\n')
  })

  it('writes JSON lines at most once a second when not on a terminal', () => {
    const { chunks, stream } = sink(false)
    let now = 1_000
    const renderer = new ProgressRenderer(stream, { now: () => now })
    renderer.update({ label: 'users', done: 10, total: 40, rate: 10, fields: { rangeId: 'all' } })
    now = 1_500
    renderer.update({ label: 'users', done: 15, total: 40, rate: 10 })
    now = 2_100
    renderer.update({ label: 'users', done: 21, total: 40, rate: 10 })
    expect(chunks.map((c) => JSON.parse(c))).toEqual([
      { type: 'progress', time: '1970-01-01T00:00:01.000Z', label: 'users', done: 10, total: 40, rate: 10, etaSeconds: 3, rangeId: 'all' },
      { type: 'progress', time: '1970-01-01T00:00:02.100Z', label: 'users', done: 21, total: 40, rate: 10, etaSeconds: 2 },
    ])
    expect(new ProgressRenderer({ isTTY: true, write: () => true }, { json: true }).interactive).toBe(false)
  })

  it('shows a count without a bar when the total is unknown', () => {
    expect(progressLine({ label: 'x', done: 1_234_567, rate: 99.6 }, 100)).toBe('x  1,234,567  100/s')
  })
})
