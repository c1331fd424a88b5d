// The orchestrator task queues of the configs the current test file made (testConfig records
// them), for test/setup/after-file.ts. A module of its own so that the cleanup hook, which runs in
// every file, loads nothing else.
export const fileTaskQueues = new Set<string>();
