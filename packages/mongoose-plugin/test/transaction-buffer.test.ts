/**
 * FerretDB v1 has no transactions, so the commit/abort handling is tested with a session double
 * that behaves like the driver's ClientSession (withTransaction and endSession go through
 * `this.commitTransaction()` / `this.abortTransaction()`).
 */
import { describe, expect, it } from 'vitest'
import { afterCommit } from '../src/write/transaction-buffer.js'

class FakeSession {
  active = false
  commitFails: Error | undefined
  inTransaction(): boolean {
    return this.active
  }
  startTransaction(): void {
    this.active = true
  }
  async commitTransaction(): Promise<void> {
    if (this.commitFails) {
      this.active = false
      throw this.commitFails
    }
    this.active = false
  }
  async abortTransaction(): Promise<void> {
    this.active = false
  }
}

describe('afterCommit', () => {
  it('runs at once (returns false) outside a transaction', () => {
    expect(afterCommit(undefined, () => {})).toBe(false)
    expect(afterCommit(new FakeSession(), () => {})).toBe(false)
  })

  it('holds events until commit, then runs each once', async () => {
    const session = new FakeSession()
    const seen: string[] = []
    session.startTransaction()
    expect(afterCommit(session, () => seen.push('a'))).toBe(true)
    expect(afterCommit(session, () => seen.push('b'))).toBe(true)
    expect(seen).toEqual([])
    await session.commitTransaction()
    expect(seen).toEqual(['a', 'b'])
    session.startTransaction()
    afterCommit(session, () => seen.push('c'))
    await session.commitTransaction()
    expect(seen).toEqual(['a', 'b', 'c'])
  })

  it('drops events on abort and on a failed commit, keeps them when the commit outcome is unknown', async () => {
    const session = new FakeSession()
    const seen: string[] = []
    session.startTransaction()
    afterCommit(session, () => seen.push('aborted'))
    await session.abortTransaction()
    session.startTransaction()
    afterCommit(session, () => seen.push('failed'))
    session.commitFails = new Error('write conflict')
    await expect(session.commitTransaction()).rejects.toThrow('write conflict')
    session.startTransaction()
    afterCommit(session, () => seen.push('unknown'))
    session.commitFails = Object.assign(new Error('network'), { hasErrorLabel: (label: string) => label === 'UnknownTransactionCommitResult' })
    await expect(session.commitTransaction()).rejects.toThrow('network')
    expect(seen).toEqual(['unknown'])
  })
})
