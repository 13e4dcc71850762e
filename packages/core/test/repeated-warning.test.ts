import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Logger } from '../src/index.js'
import { RepeatedWarning } from '../src/observe/repeated-warning.js'

describe('RepeatedWarning', () => {
  afterEach(() => void vi.useRealTimers())

  it('logs the first occurrence at once, then one line per interval saying how many it stood for', () => {
    vi.useFakeTimers()
    const lines: [string, Record<string, unknown>][] = []
    const logger = { debug() {}, info() {}, error() {}, warn: (message: string, fields: Record<string, unknown>) => void lines.push([message, fields]) } as unknown as Logger
    const warning = new RepeatedWarning(logger, 'stale write', 1_000)
    for (let i = 0; i < 100; i++) warning.warn({ key: String(i) })
    expect(lines).toEqual([['stale write', { key: '0' }]])
    vi.advanceTimersByTime(1_000)
    warning.warn({ key: '100' })
    expect(lines.at(-1)).toEqual(['stale write', { key: '100', alsoSinceLastLine: 99 }])
    vi.advanceTimersByTime(1_000)
    warning.warn({ key: '101' })
    expect(lines.at(-1)).toEqual(['stale write', { key: '101' }])
    expect(lines).toHaveLength(3)
  })
})
