// Every recorded history under test/replay/histories (real runs: success, failure + retry + abort,
// approval and promotion, a rolled-back deploy, a deploy aborted and one terminated mid-batch)
// replays against the current workflow code. A change that would break a running history must use
// patched(); the second test shows that an unpatched incompatible change is caught. Record new
// histories with test/replay/record.ts. The replays run in a child process
// (test/replay/run-replay.ts), as `conveyor replay` would.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const ROOT = path.resolve(__dirname, '..', '..');
const DIR = path.join(__dirname, 'histories');

interface Replayed {
  workflowId: string;
  file: string;
  error?: string;
  determinism?: boolean;
}

const files = () =>
  fs.readdirSync(DIR).flatMap((run) => fs.readdirSync(path.join(DIR, run)).map((f) => path.join(DIR, run, f)));

async function replay(args: string[]): Promise<Replayed[]> {
  const { stdout } = await promisify(execFile)(
    path.join(ROOT, 'node_modules', '.bin', 'tsx'),
    [path.join(__dirname, 'run-replay.ts'), ...args],
    {
      cwd: ROOT,
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  return stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{')) // the SDK's core may log to stdout as well
    .map((l) => JSON.parse(l) as Replayed);
}

describe('replay of recorded histories', () => {
  it('replays every recorded history against the current workflow code', async () => {
    const all = files();
    expect(all.length).toBeGreaterThanOrEqual(20);
    const results = await replay(all);
    expect(results).toHaveLength(all.length);
    expect(results.filter((r) => r.error)).toEqual([]);
  });

  it('catches an unpatched incompatible change to the pipeline', async () => {
    const pipelines = files().filter((f) => /^pipeline_[^/]*_[0-9a-f]{40}\.json$/.test(path.basename(f)));
    expect(pipelines.length).toBeGreaterThanOrEqual(4);
    const results = await replay([
      '--workflows',
      path.join(__dirname, 'fixtures', 'incompatible-workflows.ts'),
      ...pipelines,
    ]);
    for (const r of results) expect(r).toMatchObject({ determinism: true });
  });
});
