// Replays recorded histories (binary protobuf, base64 in JSON) against a workflow bundle, outside jest:
//   tsx test/replay/run-replay.ts [--workflows FILE | --bundle FILE] HISTORY.json...
// --workflows bundles that workflow entry (default workflows/index.ts); --bundle takes code already
// bundled from it (the test stack's, test/setup/global-setup.ts), which saves a webpack run.
// Prints one JSON line per history: { workflowId, file, error?, determinism? }.
import fs from 'node:fs';
import path from 'node:path';
import { DeterminismViolationError } from '@temporalio/workflow';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';

async function main(): Promise<void> {
  // stdout carries only the JSON results; the SDK's own log lines go to stderr.
  Runtime.install({ logger: new DefaultLogger('WARN', (e) => void process.stderr.write(`${e.level} ${e.message}\n`)) });
  const args = process.argv.slice(2);
  const option = (name: string) => {
    const i = args.indexOf(name);
    if (i >= 0 && !args[i + 1]) throw new Error(`${name} needs a file`);
    return i >= 0 ? { i, value: path.resolve(args[i + 1]) } : undefined;
  };
  const w = option('--workflows');
  const b = option('--bundle');
  if (w && b) throw new Error('--workflows and --bundle exclude each other');
  const files = args.filter((_, i) => ![w, b].some((o) => o && (i === o.i || i === o.i + 1)));
  const quiet = () => undefined;
  const bundle = b
    ? { codePath: b.value }
    : await bundleWorkflowCode({
        workflowsPath: w?.value ?? path.resolve(__dirname, '..', '..', 'workflows', 'index.ts'),
        logger: { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet },
      });
  for (const file of files) {
    const { workflowId, history: b64 } = JSON.parse(fs.readFileSync(file, 'utf8')) as {
      workflowId: string;
      history: string;
    };
    const history = temporal.api.history.v1.History.decode(Buffer.from(b64, 'base64'));
    try {
      await Worker.runReplayHistory({ workflowBundle: bundle, replayName: 'conveyor-replay' }, history, workflowId);
      process.stdout.write(JSON.stringify({ workflowId, file }) + '\n');
    } catch (err) {
      process.stdout.write(
        JSON.stringify({
          workflowId,
          file,
          error: (err as Error).message,
          determinism: err instanceof DeterminismViolationError,
        }) + '\n',
      );
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`replay: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
