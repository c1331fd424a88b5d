// Temp directories of tests: under the run's test directory (CONVEYOR_TEST_DIR, which the global
// setup makes and the teardown removes), so a run leaves nothing in the machine's temp directory;
// the machine's temp directory only when a file runs without the global setup.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A new directory named `<prefix><random>`. */
export function testTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(process.env.CONVEYOR_TEST_DIR || os.tmpdir(), prefix));
}
