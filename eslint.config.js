import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '.cache/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Library code logs through the structured Logger, never the console.
    files: ['packages/*/src/**/*.ts'],
    rules: { 'no-console': 'error' },
  },
  {
    // The core is store-agnostic: it never imports a plugin or a store's driver.
    files: ['packages/core/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@cutover/kysely-plugin', '@cutover/mongoose-plugin', '**/kysely-plugin/**', '**/mongoose-plugin/**'], message: 'The core never imports a plugin.' },
            { group: ['mongoose', 'mongodb', 'bson'], message: 'The core is store-agnostic; MongoDB types belong in the Mongoose plugin.' },
          ],
        },
      ],
    },
  },
)
