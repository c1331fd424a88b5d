// Replays recorded histories (binary protobuf, base64 in JSON) against a workflow bundle, outside jest: tsx test/replay/run-replay.ts [--workflows FILE] HISTORY.json...
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
  const w = args.indexOf('--workflows');
  const workflowsPath =
    w >= 0 ? path.resolve(args[w + 1]) : path.resolve(__dirname, '..', '..', 'workflows', 'index.ts');
  const files = args.filter((a, i) => !(w >= 0 && (i === w || i === w + 1)));
  const quiet = () => undefined;
  const bundle = await bundleWorkflowCode({
    workflowsPath,
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
