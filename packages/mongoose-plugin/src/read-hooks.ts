import type { Row } from '@cutover/core'
import type { Model, Schema } from 'mongoose'
import type { ModelBinding } from './observed-collection.js'

export interface NewStoreReader {
  find(query: unknown): Promise<readonly Row[]>
}

export function installReadHooks(_schema: Schema, _binding: (model: Model<any>) => ModelBinding | undefined): void {}
