// Every layer of tests runs in one jest invocation (`npm test`); the global setup starts one
// isolated local stack (Temporal dev server + moto on free ports) for the whole run. The lanes
// runner (test/setup/lanes-runner.ts) runs the stack-heavy files one at a time beside a pool of
// workers for the unit, workflow and replay files; maxWorkers above 1 keeps jest from running
// everything in band on a 2-core machine by itself.
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }],
    '^.+\\.js$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'ecmascript' }, target: 'es2022' }, module: { type: 'commonjs' } },
    ],
  },
  // @octokit/webhooks and @octokit/rest (and a few of their dependencies) are ESM-only; jest's module
  // runtime needs them transformed (see shared/FACTS.md).
  transformIgnorePatterns: [
    '/node_modules/(?!(@octokit|universal-user-agent|universal-github-app-jwt|toad-cache|before-after-hook|content-type|json-with-bigint)/)',
  ],
  moduleNameMapper: {
    '^@octokit/webhooks-methods$': '<rootDir>/node_modules/@octokit/webhooks-methods/dist-node/index.js',
  },
  globalSetup: '<rootDir>/test/setup/global-setup.ts',
  setupFilesAfterEnv: ['<rootDir>/test/setup/after-file.ts'],
  globalTeardown: '<rootDir>/test/setup/global-teardown.ts',
  runner: '<rootDir>/test/setup/lanes-runner.ts',
  maxWorkers: 3,
  testTimeout: 120000,
};
