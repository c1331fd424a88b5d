// Every layer of tests runs in one jest invocation (`npm test`). The global setup starts one
// isolated local stack (Temporal dev server + AWS endpoint on free ports) per band lane; the lanes
// runner (test/setup/lanes-runner.ts) runs the stack-heavy files on those lanes, one file per stack
// at a time, beside a pool of workers for the unit, workflow and replay files. lane-env.ts points
// each worker at its stack; after-file.ts terminates what a file left running on its own queues.
// maxWorkers above 1 keeps jest from running everything in band on a 2-core machine by itself.
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
  setupFiles: ['<rootDir>/test/setup/lane-env.ts'],
  setupFilesAfterEnv: ['<rootDir>/test/setup/after-file.ts'],
  globalTeardown: '<rootDir>/test/setup/global-teardown.ts',
  runner: '<rootDir>/test/setup/lanes-runner.ts',
  maxWorkers: 3,
  testTimeout: 120000,
};
