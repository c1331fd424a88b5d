// The fast tests: test/unit without the local stack (no global setup), a few seconds. Conveyor's
// own pipeline runs them as its `unit` step in the build sandbox (conveyor.self.yml), where no
// Temporal server or AWS endpoint exists. The two unit files that make one real request to the
// stack stay in `npm test` only.
const base = require('./jest.config.js');

const rest = { ...base };
for (const key of ['globalSetup', 'globalTeardown', 'runner']) delete rest[key];

/** @type {import('jest').Config} */
module.exports = {
  ...rest,
  roots: ['<rootDir>/test/unit'],
  testPathIgnorePatterns: [
    '/node_modules/',
    '/test/unit/temporal-settings\\.test\\.ts$',
    '/test/unit/aws-credentials\\.test\\.ts$',
  ],
  maxWorkers: 2,
};
