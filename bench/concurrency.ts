// 2. Concurrency. N pushes of the no-op chain (no staging hosts) to N branches at once: time until
// all runs complete and the peak RSS (VmHWM) of each worker process, sampled from /proc. In the
// same invocation, the dev server's raw capacity: N trivial workflows doing the same number of
// workflow and activity tasks as one of our runs' pipeline and stage histories; our throughput as
// a fraction of it. Three variants: the dev server with SQLite's own defaults (rollback journal),
// as the local stack starts it (`--sqlite-pragma journal_mode=wal --sqlite-pragma
// synchronous=normal`, cli/local-stack/servers.ts), the journal mode read back from the database
// file each time; and WAL with one publish channel per branch, which takes the per-channel
// publish lock (one publish at a time per channel, by design) out of the way of the runs. Over
// the burst, the dev server's own metrics (bench/server-metrics.ts): how long tasks waited for a
// worker, how long the server's own queues and database took, so a missed target says which
// side bounded it.
import type { Client } from '@temporalio/client';
import type { PipelineResult } from '../common/types';
import { startChainStack, type ChainStack } from './chain-stack';
import { startFloor } from './floor';
import {
  cpuSecondsOf,
  machineCpuSeconds,
  mb,
  memoryOf,
  ms,
  processTree,
  r2,
  run,
  type BenchContext,
  type Benchmark,
  type Row,
} from './harness';
import { activitySpans, childSpans, countTasks, historyOf } from './history';
import { scrapeMetrics, serverBurst, type Latency, type ServerBurst } from './server-metrics';

type Variant = 'sqlite-defaults' | 'wal' | 'wal-channel-per-branch';
const VARIANTS: Variant[] = ['sqlite-defaults', 'wal', 'wal-channel-per-branch'];
const DESCRIBED: Record<Variant, string> = {
  'sqlite-defaults': "SQLite's defaults (rollback journal)",
  wal: 'as the stack starts it: journal_mode=wal, synchronous=normal',
  'wal-channel-per-branch': 'WAL, one publish channel per branch',
};

/** CPU seconds so far of each stack process (with the tools it ran) and of the whole machine. */
function cpuReading(stack: ChainStack): Record<string, number> {
  const out: Record<string, number> = { machine: machineCpuSeconds().busy, wall: machineCpuSeconds().total };
  const add = (name: string, pid: number) => {
    const c = cpuSecondsOf(pid);
    out[name] = c.self + c.children;
    out[`${name}_tools`] = c.children;
  };
  add('temporal', stack.temporal.pid);
  add('s3', stack.aws.pid);
  for (const [name, svc] of Object.entries(stack.workers)) if (svc) add(name, svc.child.pid!);
  return out;
}

/** Peak RSS per stack process: the largest VmHWM in its process tree (tsx runs node under node). */
function peaks(stack: ChainStack): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, svc] of Object.entries(stack.workers)) {
    if (svc) out[name] = Math.max(0, ...processTree(svc.child.pid!).map((p) => memoryOf(p)?.hwm ?? 0));
  }
  return out;
}

async function tasksOfRun(stack: ChainStack, workflowId: string) {
  const events = await historyOf(stack.client, workflowId);
  const total = { ...countTasks(events), children: childSpans(events).length };
  for (const c of childSpans(events)) {
    const t = countTasks(await historyOf(stack.client, c.workflowId));
    total.workflowTasks += t.workflowTasks;
    total.activityTasks += t.activityTasks;
  }
  return total;
}

async function journalMode(ctx: BenchContext, dbFile: string): Promise<string> {
  const py = `import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('PRAGMA journal_mode').fetchone()[0])`;
  return (await run(ctx, 'python3', ['-c', py, dbFile])).stdout.trim();
}

async function variant(ctx: BenchContext, n: number, tag: Variant) {
  const stack = await startChainStack(ctx, {
    staging: false,
    sqlitePragmas: tag === 'sqlite-defaults' ? [] : undefined,
    channelPerBranch: tag === 'wal-channel-per-branch' ? n : undefined,
    tag,
  });
  const floor = await startFloor(ctx, stack.temporal.address, stack.client);
  const capBefore = await floor.capacity(n, 24, 5);
  const warm = await stack.push('warmup', 'warm-up', '0.0.1');
  await stack.client.workflow.getHandle(warm.workflowId).result();
  const tasks = await tasksOfRun(stack, warm.workflowId);
  ctx.log(`${tag}: one run = ${tasks.workflowTasks} workflow tasks, ${tasks.activityTasks} activity tasks`);
  // Commit first (git, untimed, one at a time: one bare repository), then deliver all webhooks at once.
  const commits = [];
  for (let i = 0; i < n; i++) commits.push(await stack.commit(`b${i}`, `push ${i}`, `2.0.${i}`));
  // Scraped outside the CPU window: a scrape costs the server a little CPU of its own.
  const server0 = await scrapeMetrics(ctx, stack.temporal.metricsUrl);
  const cpu0 = cpuReading(stack);
  const t0 = performance.now();
  const pushes = await Promise.all(commits.map((c) => stack.deliver(c)));
  const results = (await Promise.all(
    pushes.map((p) => stack.client.workflow.getHandle(p.workflowId).result()),
  )) as PipelineResult[];
  const oursMs = performance.now() - t0;
  const cpu1 = cpuReading(stack);
  const server = serverBurst(server0, await scrapeMetrics(ctx, stack.temporal.metricsUrl));
  const cpu = Object.fromEntries(Object.keys(cpu1).map((k) => [k, cpu1[k] - (cpu0[k] ?? 0)]));
  const failed = results.filter((r) => r.status !== 'succeeded').length;
  const memory = peaks(stack);
  const busy = await activityTotals(
    stack.client,
    pushes.map((p) => p.workflowId),
  );
  ctx.log(`${tag}: ${n} runs in ${ms(oursMs)} ms (${failed} not succeeded)`);
  // Capacity before (a fixed guess at the shape) and after ours (the measured shape): a shared
  // machine moves between the two, so both count.
  const cap = await floor.capacity(n, tasks.activityTasks, tasks.children);
  const capMs = (cap.ms + capBefore.ms) / 2;
  ctx.log(
    `${tag}: capacity ${n} trivial workflows in ${ms(capBefore.ms)} ms before, ${ms(cap.ms)} ms after (${JSON.stringify(cap.tasks)} each)`,
  );
  const statuses = new Map<string, number>();
  for (const r of results) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
  const bad = results.find((r) => r.status !== 'succeeded');
  if (bad) {
    const stage = bad.stages.find((s) => s.state === 'failed');
    ctx.log(`${tag}: ${JSON.stringify([...statuses])}; e.g. ${stage?.name}: ${stage?.error?.slice(0, 300)}`);
  }
  const mode = await journalMode(ctx, stack.temporal.dbFile);
  return { tag, oursMs, capMs, capTasks: cap.tasks, failed, memory, tasks, mode, busy, cpu, server };
}

/**
 * Activity time (started → completed, as the histories record it) of the runs and their stage
 * children, summed by activity type: what the burst asked of the workers, against its wall time.
 */
async function activityTotals(client: Client, runIds: string[]): Promise<Map<string, number>> {
  const byType = new Map<string, number>();
  const add = (events: Awaited<ReturnType<typeof historyOf>>) => {
    for (const a of activitySpans(events))
      if (Number.isFinite(a.startMs)) byType.set(a.type, (byType.get(a.type) ?? 0) + (a.endMs - a.startMs));
  };
  for (const id of runIds) {
    const root = await historyOf(client, id);
    add(root);
    for (const child of childSpans(root)) add(await historyOf(client, child.workflowId));
  }
  return byType;
}

export const concurrency: Benchmark = {
  name: 'concurrency',
  describe: 'N no-op chains to N branches at once: time, worker peak RSS, fraction of the dev server capacity',
  async run(ctx) {
    const n = ctx.quick ? 10 : 100;
    const rows: Row[] = [];
    const figures: Record<string, string | number> = { runs: n };
    const server: Record<string, ServerBurst & { wallS: number }> = {};
    // --quick runs the two SQLite variants (the pragmas' effect) and keeps `--quick` in all under 5
    // minutes; BENCH_CONCURRENCY_VARIANTS picks any.
    const only =
      process.env.BENCH_CONCURRENCY_VARIANTS?.split(',') ?? (ctx.quick ? ['sqlite-defaults', 'wal'] : undefined);
    for (const tag of VARIANTS.filter((v) => !only || only.includes(v))) {
      const v = await variant(ctx, n, tag);
      const key = tag.replace(/-/g, '_');
      rows.push({
        variant: DESCRIBED[tag],
        'journal_mode (read back)': v.mode,
        [`${n} runs: all complete ms`]: ms(v.oursMs),
        'not succeeded': v.failed,
        'tasks per run (wf/act)': `${v.tasks.workflowTasks}/${v.tasks.activityTasks}`,
        'capacity tasks (wf/act)': `${v.capTasks.workflowTasks}/${v.capTasks.activityTasks}`,
        'capacity: same tasks ms (mean of before/after)': ms(v.capMs),
        'ours ÷ capacity (throughput)': r2(v.capMs / v.oursMs),
        'peak RSS MB orchestrator/builder/api': `${mb(v.memory.orchestrator)}/${mb(v.memory.builder)}/${mb(v.memory.api)}`,
        'activity s summed (top 4 types)': `${r2(sum(v.busy) / 1000)} (${top(v.busy, 4)})`,
        'CPU s in the burst: machine busy of all cores; orchestrator/builder/api/temporal/s3 (with their tools)':
          `${r2(v.cpu.machine)} of ${r2(v.cpu.wall)}; ` +
          ['orchestrator', 'builder', 'api', 'temporal', 's3'].map((k) => r2(v.cpu[k] ?? 0)).join('/') +
          ` (tools they ran: orchestrator ${r2(v.cpu.orchestrator_tools ?? 0)}, builder ${r2(v.cpu.builder_tools ?? 0)})`,
        'server: task scheduled → polled ms, workflow / activity: mean (p90) of tasks': `${latencyCell(v.server.workflowTaskWait, true)} / ${latencyCell(v.server.activityTaskWait, true)}`,
        'server: own task queues wait ms mean (p90)': latencyCell(v.server.serverQueueWait),
        'server: Respond*TaskCompleted ms mean (p90)': latencyCell(v.server.completions),
        'server: database ops; ms mean (p90); op s summed ÷ wall': v.server.persistence
          ? `${v.server.persistence.count.toLocaleString('en-US')}; ${latencyCell(v.server.persistence)}; ${r2(v.server.persistence.summedS / (v.oursMs / 1000))}`
          : 'n/a',
      });
      server[tag] = { ...v.server, wallS: r2(v.oursMs / 1000) };
      for (const k of [
        'machine',
        'orchestrator',
        'orchestrator_tools',
        'builder',
        'builder_tools',
        'api',
        'temporal',
        's3',
      ])
        figures[`${key}_cpu_${k}_s`] = r2(v.cpu[k] ?? 0);
      figures[`${key}_activity_s`] = r2(sum(v.busy) / 1000);
      figures[`${key}_s`] = r2(v.oursMs / 1000);
      figures[`${key}_fraction`] = r2(v.capMs / v.oursMs);
      figures[`${key}_journal`] = v.mode;
      figures[`${key}_max_rss_MB`] = mb(Math.max(v.memory.orchestrator, v.memory.builder));
      figures[`${key}_wft_wait_ms`] = meanCell(v.server.workflowTaskWait);
      figures[`${key}_act_wait_ms`] = meanCell(v.server.activityTaskWait);
      figures[`${key}_db_ms`] = meanCell(v.server.persistence);
    }
    return {
      rows,
      figures,
      details: { server },
      notes: [
        'no staging hosts: every deploy of a channel takes one fleet lock, so N deploys would run one after the other by design',
        'capacity: N workflows shaped like a run (a parent with as many children, as many no-op activities, one at a time) on an in-process worker, same server; run before and after ours, mean',
        'superseded: the promote stage skips a version older than the one production already has (the runs race); such a run did test, package, publish',
        'synchronous=normal is a per-connection setting: it cannot be read back from the file; journal_mode=wal can',
        'peak RSS = VmHWM of the node process of each worker (largest in its tsx process tree), after the burst',
        'CPU s: utime+stime of each process tree plus its reaped children (cutime+cstime: gpg, createrepo_c, rpmsign, dpkg-deb), between the first delivery and the last result; machine = /proc/stat busy time over all cores, of the total (wall × cores)',
        'activity s summed: started → completed of every activity of the runs and their stages, from the histories; against the wall time × 2 cores, what the burst asked of the machine besides orchestration',
        "server: the dev server's own metrics over the burst (delta of two scrapes; p90 from its histogram buckets; n/a where this build lacks the metric, none where nothing was counted). Tasks waiting long to be polled while Respond*TaskCompleted, the own queues and the database stay fast: the workers bound the burst. Those slow (database op s summed ÷ wall above 1: operations queued for SQLite): the server did. Activity tasks counted are the build queues' only: the orchestrator's own activities start eagerly with its workflow task and skip matching (JSON details: by queue). Names: task_schedule_to_start_latency, task_latency_queue, frontend service_latency, persistence_latency + visibility_persistence_latency",
      ],
    };
  },
};

/** Milliseconds to one decimal below 10, whole above. */
const msCell = (x: number) => (x >= 10 ? Math.round(x) : Math.round(x * 10) / 10);
const latencyCell = (l: Latency | undefined, withCount = false) =>
  !l
    ? 'n/a'
    : l.count === 0
      ? 'none'
      : `${msCell(l.meanMs)} (${msCell(l.p90Ms)})${withCount ? ` of ${l.count.toLocaleString('en-US')}` : ''}`;
const meanCell = (l: Latency | undefined) => (!l ? 'n/a' : l.count === 0 ? 'none' : msCell(l.meanMs));
const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
const top = (m: Map<string, number>, n: number) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([t, v]) => `${t} ${r2(v / 1000)}`)
    .join(', ');
