// The orchestrator's workflow bundle, built in a short-lived child process when none was built
// ahead (CONVEYOR_WORKFLOW_BUNDLE). Bundling is webpack run over workflows/: done inside the
// worker, it raised the process's peak RSS by ~120 MB (203 → 326 MB measured here, before any
// work) and left webpack's modules and garbage in a heap that then serves workflows for days.
// In a child, that memory goes back to the system when the child exits; the worker only reads
// the finished file. The child is this file run as a script, under the same Node flags (tsx's
// loader included), so it bundles the same workflows/ the worker would have.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const WORKFLOWS = path.resolve(__dirname, '..', 'workflows', 'index.ts');
// Marks the child. `require.main === module` alone is not enough: a bundler that inlines this
// module into the orchestrator's own bundle (the tests' prebuilt entry points) makes it true there.
const CHILD_ENV = 'CONVEYOR_WORKFLOW_BUNDLE_CHILD';

/** Bundles workflows/ in a child process; returns the bundle's file (the caller removes its dir). */
export async function workflowBundleInChild(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-bundle-'));
  const out = path.join(dir, 'workflow-bundle.js');
  const child = fork(__filename, [out], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { ...process.env, [CHILD_ENV]: '1' },
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  if (code !== 0 || !fs.existsSync(out)) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`bundling workflows/ failed (exit ${code}): ${stderr.trim() || 'no output'}`);
  }
  return out;
}

async function bundleTo(out: string): Promise<void> {
  const { bundleWorkflowCode } = await import('@temporalio/worker');
  const quiet = () => undefined;
  const bundle = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS,
    logger: { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet },
  });
  fs.writeFileSync(out, bundle.code);
}

if (require.main === module && process.env[CHILD_ENV] === '1') {
  const out = process.argv[2];
  if (!out) {
    process.stderr.write('usage: workflow-bundle <output file>\n');
    process.exit(2);
  }
  bundleTo(out).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
