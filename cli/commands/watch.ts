// `conveyor watch <workflowId>`: follows a run to its end. A run waiting in awaiting-operator is
// followed on, since an operator may retry or abort it from anywhere (another shell, the Temporal
// CLI, the Web UI); the exit code is the run's outcome.
import type { Client } from '@temporalio/client';
import { Command } from 'commander';
import type { PipelineStatus } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import { renderStatus } from '../follow';
import { commandConfig, explainRunError, NoAnswerError, queryStatus, withClient } from './context';
import { statusDetails } from './status';

const TERMINAL = new Set(['succeeded', 'failed', 'aborted', 'rejected', 'expired', 'superseded']);
const CLOSED = new Set(['COMPLETED', 'FAILED', 'TERMINATED', 'CANCELLED', 'TIMED_OUT', 'CONTINUED_AS_NEW']);

export function watchCommand(): Command {
  return new Command('watch')
    .summary('follow a run to its end; exit 0 if it succeeded')
    .argument('<workflowId>', 'a pipeline run (see conveyor list)')
    .description(
      'follow a run live until it ends, also while it waits for an operator; exits 0 when it succeeds, 1 otherwise',
    )
    .option('--interval <ms>', 'how often to ask the run', '500')
    .action(async (id: string, o: { interval: string }, cmd: Command) => {
      const intervalMs = Number(o.interval);
      if (!Number.isInteger(intervalMs) || intervalMs < 50)
        throw new Error(`--interval: not a number of ms ≥ 50: ${o.interval}`);
      const config = commandConfig(cmd);
      const outcome = await withClient(config, (client) => watchRun(client, config, id, { intervalMs }));
      process.exitCode = outcome === 'succeeded' ? 0 : 1;
    });
}

export interface WatchOptions {
  out?: { write(s: string): boolean; isTTY?: boolean };
  intervalMs?: number;
}

/** Follows the run until it ends; returns its outcome (`succeeded`, `failed`, …, or Temporal's status for a run that cannot be queried). */
export async function watchRun(
  client: Client,
  config: ConveyorConfig,
  id: string,
  opts: WatchOptions = {},
): Promise<string> {
  const out = opts.out ?? process.stdout;
  const tty = Boolean(out.isTTY);
  const handle = client.workflow.getHandle(id);
  let frame = 0;
  let drawn = 0;
  let last: PipelineStatus | undefined;
  let lastLines: string[] = [];
  let silent = false;
  for (;;) {
    let closedAs: string | undefined;
    try {
      const desc = await handle.describe();
      if (CLOSED.has(desc.status.name)) closedAs = desc.status.name;
    } catch (err) {
      throw explainRunError(err, config, id);
    }
    let status: PipelineStatus | undefined;
    try {
      status = await queryStatus(client, config, id, 5000);
      silent = false;
    } catch (err) {
      // A closed run whose workers are gone cannot answer; its Temporal status is the outcome.
      if (closedAs) {
        out.write(`${id} ended ${closedAs} (its status query went unanswered: ${(err as Error).message})\n`);
        return closedAs === 'COMPLETED' ? 'succeeded' : closedAs.toLowerCase();
      }
      // The orchestrator may be restarting: keep watching, and say so once.
      if (!(err instanceof NoAnswerError)) throw err;
      if (!silent) out.write(`${err.message}; still watching\n`);
      silent = true;
    }
    if (status) {
      const lines = renderStatus(status, frame++);
      if (tty) {
        const all = [...lines, ...statusDetails(status)];
        if (drawn > 0) out.write(`\x1b[${drawn}A\x1b[J`);
        out.write(all.map((l) => `\x1b[2K${l}\n`).join(''));
        drawn = all.length;
      } else {
        // Without a terminal: the run's status when it changes, a stage's line when its state changes.
        const changed = status.status !== last?.status;
        if (changed) out.write(`${id}  ${status.status}\n`);
        lines.slice(1).forEach((l, i) => {
          if (stateOf(l) !== stateOf(lastLines[i + 1] ?? '')) out.write(l + '\n');
        });
        if (changed && status.status.startsWith('awaiting-')) out.write(statusDetails(status).join('\n') + '\n');
        lastLines = lines;
      }
      last = status;
      if (TERMINAL.has(status.status) || closedAs) {
        if (!tty) {
          const details = statusDetails(status);
          if (details.length) out.write(details.join('\n') + '\n');
        }
        out.write(`${id} ended: ${status.status}\n`);
        return status.status;
      }
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
  }
}

function stateOf(line: string): string {
  return line.replace(/[\d.]+s/g, '').replace(/[█░▓]/g, '');
}
