// `conveyor replay [--since 7d] [--query Q]`: the check to run before deploying new worker code.
// Downloads the histories of recent runs (every pipeline and all its stage children) from the
// server and replays them against the local workflow code, printing a pass/fail table; exits 1
// when any history no longer replays (an incompatible change that needs patched()). The long-lived
// entity workflows (branch-state, locks) are replayed too: their current runs and the runs they
// continued-as-new from within --since; they outlive every pipeline, so they matter most.
import path from 'node:path';
import { Command } from 'commander';
import { DeterminismViolationError } from '@temporalio/workflow';
import { commandConfig, withClient } from './context';

const UNITS: Record<string, number> = { m: 60e3, h: 3600e3, d: 86400e3 };

export function sinceToIso(since: string, now = Date.now()): string {
  const m = /^(\d+)([mhd])$/.exec(since);
  if (!m) throw new Error(`--since: use a number and m, h or d (e.g. 7d), not ${JSON.stringify(since)}`);
  return new Date(now - Number(m[1]) * UNITS[m[2]]).toISOString();
}

export function replayCommand(): Command {
  return new Command('replay')
    .summary('replay recent runs against the local workflow code (before deploying new workers)')
    .option('--since <age>', 'runs started within this age: 30m, 12h, 7d', '7d')
    .option('--query <visibility query>', 'instead of --since: which pipelines (e.g. "ConveyorBranch = \'main\'")')
    .option('--limit <n>', 'at most this many pipelines (and this many entity runs)', '50')
    .option('--entities', 'also the entity workflows (branch-state, locks); the default without --query')
    .action(async (o: { since: string; query?: string; limit: string; entities?: boolean }, cmd: Command) => {
      const config = commandConfig(cmd);
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new Error(`--limit: not a positive integer: ${o.limit}`);
      const query = o.query
        ? `WorkflowType = 'pipeline' AND (${o.query})`
        : `WorkflowType = 'pipeline' AND StartTime > '${sinceToIso(o.since)}'`;
      // The worker package (webpack, the native bridge) is loaded by this command only.
      const { bundleWorkflowCode, DefaultLogger, Runtime, Worker } = await import('@temporalio/worker');
      Runtime.install({ logger: new DefaultLogger('ERROR', () => undefined) });
      const quiet = () => undefined;
      const bundle = await bundleWorkflowCode({
        workflowsPath: path.resolve(__dirname, '..', '..', 'workflows', 'index.ts'),
        logger: { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet },
      });
      const rows: { id: string; type: string; result: string }[] = [];
      await withClient(config, async (client) => {
        const replayOne = async (w: { workflowId: string; runId: string; type: string }) => {
          const history = await client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
          try {
            await Worker.runReplayHistory(
              { workflowBundle: bundle, replayName: 'conveyor-replay' },
              history,
              w.workflowId,
            );
            rows.push({ id: w.workflowId, type: w.type, result: 'ok' });
          } catch (err) {
            const kind = err instanceof DeterminismViolationError ? 'NONDETERMINISTIC' : 'ERROR';
            rows.push({ id: w.workflowId, type: w.type, result: `${kind}: ${firstCause((err as Error).message)}` });
          }
        };
        const roots: string[] = [];
        for await (const w of client.workflow.list({ query })) {
          if (roots.length >= limit) break;
          roots.push(w.workflowId);
        }
        for (const root of roots) {
          for await (const w of client.workflow.list({ query: `RootWorkflowId = '${root.replace(/'/g, "\\\\'")}'` })) {
            await replayOne(w);
          }
        }
        if (o.entities ?? !o.query) {
          const entities =
            `(WorkflowType = 'branchState' OR WorkflowType = 'repositoryLock') AND ` +
            `(ExecutionStatus = 'Running' OR CloseTime > '${sinceToIso(o.since)}')`;
          let n = 0;
          for await (const w of client.workflow.list({ query: entities })) {
            if (n++ >= limit) break;
            await replayOne(w);
          }
        }
      });
      if (rows.length === 0) {
        console.log(`no runs match ${query}`);
        return;
      }
      const width = Math.max(...rows.map((r) => r.id.length), 'WORKFLOW ID'.length);
      console.log(`${'WORKFLOW ID'.padEnd(width)}  ${'TYPE'.padEnd(14)}  RESULT`);
      for (const r of rows) console.log(`${r.id.padEnd(width)}  ${r.type.padEnd(14)}  ${r.result}`);
      const bad = rows.filter((r) => r.result !== 'ok').length;
      console.log(`\n${rows.length - bad} of ${rows.length} histories replay against the local workflow code`);
      if (bad > 0) throw new Error(`${bad} histories do not replay: guard the change with patched() before deploying`);
    });
}

/** The informative part of a replay error (the SDK wraps it in a long explanation). */
function firstCause(message: string): string {
  const m = /\[TMPRL\d+\][^"]*/.exec(message);
  return (m ? m[0] : message.split('\n')[0]).slice(0, 160);
}
