// Type-aware linting: no-floating-promises and friends catch the async mistakes that matter
// most in a service that must never lose a job.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['eslint.config.js', '**/*.mjs', '**/*.cjs', '**/dist/**', '**/node_modules/**', 'proto/src/gen/**', 'sdk/typescript/src/gen/**', 'executor/runtime/**', '.kiln/**', '.cache/**', 'images/**', '**/*.config.ts', '**/vitest.*.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // The SDK's core runs in browsers: Node's modules only in its node/ entry.
    files: ['sdk/typescript/src/**/*.ts'],
    ignores: ['sdk/typescript/src/node/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['node:*'], message: 'the SDK core must run in browsers: put Node-only code in src/node' }] }] },
  },
  {
    // Tests poke at untyped JSON bodies on purpose.
    files: ['**/*.test.ts', 'tests/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
