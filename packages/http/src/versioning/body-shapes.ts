import { ConfigError, type ConfigProblem, type Row } from '@cutover/core'
import type { z } from 'zod'

/** What detection needs to know of a version's object schema: its fields, and which are required. */
export interface BodyShape {
  readonly version: string
  readonly fields: ReadonlySet<string>
  readonly required: ReadonlySet<string>
}

export function bodyShape(resource: string, version: string, schema: z.ZodType<Row>): BodyShape {
  const shape = (schema as { shape?: Record<string, z.ZodType> }).shape
  if (!shape || typeof shape !== 'object') {
    throw new ConfigError([
      { source: `${resource}.acceptBodiesIn`, value: version, message: `${resource}: the version ${version} schema is not a z.object, so a body cannot be told apart by schema` },
    ])
  }
  const fields = Object.keys(shape)
  return { version, fields: new Set(fields), required: new Set(fields.filter((field) => !(shape[field] as z.ZodType).safeParse(undefined).success)) }
}

/**
 * Two shapes can be told apart by schema when each has a required field the other does not know:
 * then a body written in one shape lacks a required field of the other and matches only its own.
 * Otherwise every body of one would also pass as the other, so the definition is refused at
 * start-up rather than guessed at per request.
 */
export function ambiguityProblems(resource: string, shapes: readonly BodyShape[]): ConfigProblem[] {
  const problems: ConfigProblem[] = []
  for (const [i, a] of shapes.entries()) {
    for (const b of shapes.slice(i + 1)) {
      const onlyA = [...a.required].filter((f) => !b.fields.has(f))
      const onlyB = [...b.required].filter((f) => !a.fields.has(f))
      if (onlyA.length === 0 || onlyB.length === 0) {
        problems.push({
          source: `${resource}.acceptBodiesIn`,
          value: [a.version, b.version],
          message: `${resource}: bodies of versions ${a.version} and ${b.version} cannot be told apart by schema: ${
            onlyA.length === 0 ? `version ${a.version}` : `version ${b.version}`
          } has no required field the other lacks; accept only one of them on this endpoint`,
        })
      }
    }
  }
  return problems
}

/** For a partial body (PATCH): the versions whose fields include every field sent. */
export function shapesKnowing(shapes: readonly BodyShape[], fields: readonly string[]): BodyShape[] {
  return shapes.filter((shape) => fields.every((field) => shape.fields.has(field)))
}
