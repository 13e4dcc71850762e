import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url))

export default defineConfig({
  resolve: {
    alias: {
      '@cutover/core': src('core'),
      '@cutover/kysely-plugin': src('kysely-plugin'),
      '@cutover/mongoose-plugin': src('mongoose-plugin'),
      '@cutover/http': src('http'),
    },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['./test/setup/global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // CI asks for a JSON summary too (see .ci/run), without changing the test command.
    reporters: process.env.CUTOVER_TEST_JSON ? ['default', ['json', { outputFile: process.env.CUTOVER_TEST_JSON }]] : ['default'],
  },
})
