// How tests start our own processes (the CLI, the workers, the API, the replay runner): from the
// bundles test/setup/global-setup.ts prebuilt (scripts/prebuild.js), with plain `node`, instead of
// a cold tsx that compiles the sources again in every process. CONVEYOR_TEST_TSX=1 runs the
// sources through tsx instead, as `npm run conveyor` does (to rule the bundling out when a test
// fails).
import path from 'node:path';
import { ENTRIES, type EntryName } from '../../scripts/prebuild';
import { ROOT, tsxBin } from '../../cli/local-stack/tools';

export interface EntryCommand {
  command: string;
  args: string[];
}

/** The command line that starts `name` with `args`. */
export function entry(name: EntryName, args: string[] = []): EntryCommand {
  if (process.env.CONVEYOR_TEST_TSX === '1')
    return { command: tsxBin(), args: [path.join(ROOT, ENTRIES[name]), ...args] };
  const dir = process.env.CONVEYOR_TEST_PREBUILT;
  if (!dir) throw new Error('the test stack is not running (jest global setup)');
  return { command: process.execPath, args: [path.join(dir, `${name}.js`), ...args] };
}
