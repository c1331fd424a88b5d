// Lint rules that enforce what we would otherwise have to remember: workflow code is
// deterministic (no Node built-ins, AWS SDK, fs, or value imports of activities), promises are
// awaited, type-only imports say so.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      '.tools/',
      '.dev/',
      'test-output/',
      'coverage/',
      'cli/demo/sample/',
      'test/replay/histories/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // The plain JS files (configs, dependency-free scripts, the host-exec client) are outside
        // tsconfig; a dozen of them in the default project costs lint little.
        projectService: {
          allowDefaultProject: ['*.js', '*.mjs', 'bin/*.js', 'scripts/*.js', 'activities/fleet/*.js'],
          maximumDefaultProjectFileMatchCount_THIS_WILL_SLOW_DOWN_LINTING: 16,
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-deprecated': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    // The fault suite prints the figures it measured, like the benchmarks.
    files: ['cli/**/*.ts', 'bench/**/*.ts', 'test/reliability/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      globals: {
        require: 'readonly',
        module: 'writable',
        process: 'readonly',
        __dirname: 'readonly',
        console: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        // Node >= 18 globals (scripts/bootstrap.js fetches the Temporal CLI wheel with them)
        Buffer: 'readonly',
        URL: 'readonly',
        fetch: 'readonly',
        AbortSignal: 'readonly',
      },
    },
    rules: { ...tseslint.configs.disableTypeChecked.rules, '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox and is replayed: no I/O, no clocks or
    // randomness except the SDK's, no imports that could bring either in.
    files: ['workflows/**/*.ts', 'common/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'workflow code must not use Node built-ins' },
            {
              group: ['fs', 'path', 'os', 'child_process', 'crypto', 'http', 'https', 'net'],
              message: 'workflow code must not do I/O',
            },
            {
              group: ['@aws-sdk/*', '@temporalio/client', '@temporalio/worker', '@temporalio/activity'],
              message: 'not allowed in workflow code',
            },
            {
              group: ['**/activities', '**/activities/**'],
              allowTypeImports: true,
              message: 'import activities with `import type` only',
            },
            {
              group: ['**/config/**', '**/api/**', '**/cli/**', '**/workers/**'],
              allowTypeImports: true,
              message: 'workflow code imports only workflows/ and common/',
            },
          ],
        },
      ],
      'no-restricted-properties': [
        'error',
        {
          object: 'Math',
          property: 'random',
          message: 'randomness in workflow code: use uuid4() from @temporalio/workflow',
        },
      ],
    },
  },
);
