import type { IncomingMessage } from 'node:http'
import { COMPAT_ERROR_CODES, HttpError } from '../versioning/http-error.js'

/** Reads and parses a JSON request body when no framework middleware did; `undefined` when empty. */
export async function readJsonBody(request: IncomingMessage, limitBytes = 1_048_576): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request) {
    size += (chunk as Buffer).length
    if (size > limitBytes) throw new HttpError(413, COMPAT_ERROR_CODES.invalidBody, `the body is larger than ${limitBytes} bytes`)
    chunks.push(chunk as Buffer)
  }
  return parseJson(Buffer.concat(chunks).toString('utf8'))
}

export function parseJson(text: string): unknown {
  if (text.trim() === '') return undefined
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new HttpError(400, COMPAT_ERROR_CODES.invalidBody, `the body is not JSON: ${(error as Error).message}`, [{ path: '', message: 'not JSON' }])
  }
}
