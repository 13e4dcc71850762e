import { describe, expect, it } from 'vitest'
import { BatchSizer } from '../src/index.js'

describe('BatchSizer', () => {
  it('starts at 1,000, grows while fast, halves when slow, within its bounds', () => {
    const sizer = new BatchSizer({ targetMs: 100, max: 3_000 })
    expect(sizer.size).toBe(1_000)
    expect([10, 10, 10, 10].map((ms) => sizer.observe(ms))).toEqual([1_500, 2_250, 3_000, 3_000])
    expect(sizer.observe(70)).toBe(3_000) // between half the target and the target: stays
    expect(sizer.observe(250)).toBe(1_500)
    expect(sizer.observe(140)).toBe(750) // latency followed the size: keeps halving
  })

  it('climbs on throughput instead when the latency does not follow the batch size (a fixed cost per query)', () => {
    const sizer = new BatchSizer({ targetMs: 100 })
    expect(sizer.observe(600)).toBe(500)
    expect(sizer.observe(580)).toBe(1_500) // halving did not help: grow past where it was
    expect(sizer.observe(620)).toBe(2_250) // 2.4 rows/ms, up from 0.86: keep growing
    expect(sizer.observe(1_400)).toBe(1_500) // 1.6 rows/ms, down: one step back, and stay
    expect(sizer.observe(20)).toBe(1_500)
  })

  it('resumes at a checkpointed size, clamped to the bounds', () => {
    expect(new BatchSizer({ max: 5_000 }, 8_000).size).toBe(5_000)
  })
})
