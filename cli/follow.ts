// Following a run: polls the pipeline's `status` query and draws one line per stage (a live
// redraw on a terminal, one line per change otherwise). Used by the demo and `conveyor watch`.
import type { Client } from '@temporalio/client';
import type { PipelineStatus, StageStatus } from '../common/types';
import { statusQuery } from '../workflows/messages';

const TERMINAL_RUN = new Set(['succeeded', 'failed', 'aborted', 'rejected', 'expired', 'superseded']);
const CLOSED = new Set(['COMPLETED', 'FAILED', 'TERMINATED', 'CANCELLED', 'TIMED_OUT', 'CONTINUED_AS_NEW']);

export interface FollowOptions {
  out?: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean };
  intervalMs?: number;
  timeoutMs?: number;
  /** Return as soon as the run waits for an operator (the demo), instead of watching on (`conveyor watch`). */
  stopWhenAwaitingOperator?: boolean;
  /** Return as soon as the run waits for approval (the demo approves it). */
  stopWhenAwaitingApproval?: boolean;
}

export async function followRun(client: Client, workflowId: string, opts: FollowOptions = {}): Promise<PipelineStatus> {
  const out = opts.out ?? process.stdout;
  const tty = Boolean(out.isTTY);
  const handle = client.workflow.getHandle(workflowId);
  const deadline = opts.timeoutMs ? Date.now() + opts.timeoutMs : Infinity;
  let drawn = 0;
  let lastLines: string[] = [];
  let frame = 0;
  for (;;) {
    const desc = await handle.describe();
    const closed = CLOSED.has(desc.status.name);
    let status: PipelineStatus | undefined;
    try {
      status = await handle.query(statusQuery);
    } catch (err) {
      if (closed)
        throw new Error(`run ${workflowId} ended ${desc.status.name} and cannot be queried: ${(err as Error).message}`);
    }
    if (status) {
      const lines = renderStatus(status, frame++);
      if (tty) {
        if (drawn > 0) out.write(`\x1b[${drawn}A`);
        out.write(lines.map((l) => `\x1b[2K${l}\n`).join(''));
        drawn = lines.length;
      } else {
        // Without a terminal, print a stage's line only when its state changes.
        const changed = lines.slice(1).filter((l, i) => stateWord(l) !== stateWord(lastLines[i + 1] ?? ''));
        if (lastLines.length === 0) out.write(lines[0] + '\n');
        for (const l of changed) out.write(l + '\n');
        lastLines = lines;
      }
      if (TERMINAL_RUN.has(status.status) || closed) return status;
      if (opts.stopWhenAwaitingOperator && status.status === 'awaiting-operator') return status;
      if (opts.stopWhenAwaitingApproval && status.status === 'awaiting-approval') return status;
    }
    if (Date.now() > deadline) throw new Error(`timed out following ${workflowId}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 400));
  }
}

function stateWord(line: string): string {
  return line.replace(/[\d.]+s/g, '').replace(/[█░▓]/g, '');
}

const BAR = 16;

export function renderStatus(s: PipelineStatus, frame = 0): string[] {
  const head = `${s.workflowId}  ${s.status}  ${secs(s.startedAt, s.endedAt)}`;
  return [head, ...s.stages.map((st) => renderStage(st, frame))];
}

function renderStage(st: StageStatus, frame: number): string {
  const name = (st.distro ? `${st.name}/${st.distro}` : st.name).padEnd(18);
  let bar: string;
  switch (st.state) {
    case 'succeeded':
      bar = '█'.repeat(BAR);
      break;
    case 'failed':
      bar = '▓'.repeat(BAR);
      break;
    case 'running': {
      const pos = frame % BAR;
      bar = '░'.repeat(pos) + '█' + '░'.repeat(BAR - pos - 1);
      break;
    }
    default:
      bar = '░'.repeat(BAR);
  }
  const time = st.startedAt ? secs(st.startedAt, st.endedAt) : '';
  const attempt = st.attempt > 1 ? ` (attempt ${st.attempt})` : '';
  return `  ${name} ${bar}  ${st.state.padEnd(9)} ${time}${attempt}`;
}

function secs(from: string, to?: string): string {
  const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}

export function webUiLink(uiUrl: string, namespace: string, workflowId: string): string {
  return `${uiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
