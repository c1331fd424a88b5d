// `conveyor workers`: who serves which task queue. The 2015 chain found its build hosts through
// Consul; here a build host is a worker polling `build-<distro>`, and Temporal knows the pollers
// it has seen (identity, last poll) and each queue's backlog (DescribeTaskQueue with reportStats,
// which Temporal Server 1.29 answers in its default mode, without the deprecated enhanced mode).
import type { Client } from '@temporalio/client';
import { Command } from 'commander';
import { buildQueue } from '../../common/queues';
import type { ConveyorConfig } from '../../config/conveyor';
import { commandConfig, withClient } from './context';

// temporal.api.enums.v1: TaskQueueType WORKFLOW = 1, ACTIVITY = 2; TaskQueueKind NORMAL = 1.
// Numbers, because @temporalio/proto is not a dependency of ours, only of the SDK.
const TASK_QUEUE_TYPE = { workflow: 1, activity: 2 } as const;
const KIND_NORMAL = 1;

/** Temporal keeps a poller for minutes after its last poll; a long poll lasts up to a minute. */
const STALE_AFTER_MS = 120_000;

type Long = { toString(): string };
type Seconds = { seconds?: Long | number | null; nanos?: number | null } | null | undefined;

export interface Poller {
  identity: string;
  lastAccessTime: string | null;
  stale: boolean;
}

export interface QueueKind {
  type: 'workflow' | 'activity';
  pollers: Poller[];
  backlog: number;
  /** Age of the oldest backlogged task, seconds. */
  backlogAgeSeconds: number;
  tasksAddRate: number;
  tasksDispatchRate: number;
}

export interface QueueReport {
  queue: string;
  role: 'orchestrator' | 'build';
  distro?: string;
  /** Repositories whose runs need this queue. */
  neededBy: string[];
  kinds: QueueKind[];
  /** The sentence to act on when no live worker polls the queue. */
  problem?: string;
}

export function workersCommand(): Command {
  return new Command('workers')
    .summary('workers polling each task queue, and the backlogs')
    .description(
      'list the workers polling the orchestrator queue and each build-<distro> queue (identity, last poll) ' +
        'and their backlogs; exits 1 when a queue has no worker',
    )
    .option('--json', 'print the report as JSON')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const config = commandConfig(cmd);
      const reports = await withClient(config, (client) => describeQueues(client, config));
      console.log(o.json ? JSON.stringify(reports, null, 2) : renderQueues(config, reports).join('\n'));
      const missing = reports.filter((r) => r.problem);
      if (missing.length > 0) {
        process.stderr.write(missing.map((r) => `conveyor: ${r.problem}\n`).join(''));
        process.exitCode = 1;
      }
    });
}

export async function describeQueues(client: Client, config: ConveyorConfig, now = Date.now()): Promise<QueueReport[]> {
  const orchestrator = config.temporal.taskQueue;
  const reports: QueueReport[] = [
    {
      queue: orchestrator,
      role: 'orchestrator',
      neededBy: config.repositories.map((r) => r.name),
      kinds: await Promise.all([
        describeKind(client, config, orchestrator, 'workflow', now),
        describeKind(client, config, orchestrator, 'activity', now),
      ]),
    },
  ];
  for (const distro of Object.keys(config.distros)) {
    const queue = buildQueue(distro);
    reports.push({
      queue,
      role: 'build',
      distro,
      neededBy: config.repositories.filter((r) => r.distros.includes(distro)).map((r) => r.name),
      kinds: [await describeKind(client, config, queue, 'activity', now)],
    });
  }
  for (const r of reports) {
    if (r.kinds.some((k) => k.pollers.some((p) => !p.stale))) continue;
    r.problem =
      r.role === 'build'
        ? `no worker polls ${r.queue}: runs needing ${r.distro} will wait`
        : `no worker polls ${r.queue}: no pipeline makes progress (start the orchestrator: tsx workers/orchestrator.ts)`;
  }
  return reports;
}

async function describeKind(
  client: Client,
  config: ConveyorConfig,
  queue: string,
  type: QueueKind['type'],
  now: number,
): Promise<QueueKind> {
  const res = await client.workflowService.describeTaskQueue({
    namespace: config.temporal.namespace,
    taskQueue: { name: queue, kind: KIND_NORMAL },
    taskQueueType: TASK_QUEUE_TYPE[type],
    reportStats: true,
  });
  return {
    type,
    pollers: (res.pollers ?? []).map((p) => {
      const at = toMillis(p.lastAccessTime);
      return {
        identity: p.identity ?? '',
        lastAccessTime: at === undefined ? null : new Date(at).toISOString(),
        stale: at === undefined || now - at > STALE_AFTER_MS,
      };
    }),
    backlog: num(res.stats?.approximateBacklogCount),
    backlogAgeSeconds: (toMillis(res.stats?.approximateBacklogAge) ?? 0) / 1000,
    tasksAddRate: res.stats?.tasksAddRate ?? 0,
    tasksDispatchRate: res.stats?.tasksDispatchRate ?? 0,
  };
}

export function renderQueues(config: ConveyorConfig, reports: QueueReport[], now = Date.now()): string[] {
  const lines = [`task queues of namespace ${config.temporal.namespace} at ${config.temporal.address}`];
  for (const r of reports) {
    const spec = r.distro ? config.distros[r.distro] : undefined;
    const what =
      r.role === 'orchestrator'
        ? 'orchestrator: pipelines, stages, build numbers, locks, publishing'
        : `build host for ${r.distro}: ${spec?.format} ${spec?.arch}`;
    const needed = r.neededBy.length ? `; needed by ${r.neededBy.join(', ')}` : '; no repository uses it';
    lines.push('', `${r.queue}  (${what}${needed})`);
    for (const k of r.kinds) {
      const live = k.pollers.filter((p) => !p.stale).length;
      const backlog =
        k.backlog > 0
          ? `backlog ${k.backlog} task${k.backlog === 1 ? '' : 's'}, oldest ${ago(k.backlogAgeSeconds * 1000)}`
          : 'backlog 0';
      lines.push(
        `  ${k.type} tasks: ${live === 0 ? 'no poller' : `${live} poller${live === 1 ? '' : 's'}`}, ${backlog}`,
      );
      for (const p of k.pollers) {
        const seen = p.lastAccessTime
          ? `last poll ${ago(now - Date.parse(p.lastAccessTime))} ago (${p.lastAccessTime})`
          : 'never polled';
        lines.push(`    ${p.identity.padEnd(32)} ${seen}${p.stale ? '  stale: probably gone' : ''}`);
      }
    }
    if (r.problem) lines.push(`  ${r.problem}`);
  }
  return lines;
}

function ago(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${Math.round(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

function num(v: Long | number | null | undefined): number {
  return v === null || v === undefined ? 0 : Number(v.toString());
}

/** A protobuf Timestamp as epoch ms, or a Duration as ms. */
function toMillis(t: Seconds): number | undefined {
  if (!t || (t.seconds === undefined && t.nanos === undefined)) return undefined;
  return num(t.seconds) * 1000 + (t.nanos ?? 0) / 1e6;
}
