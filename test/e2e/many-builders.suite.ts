// Several builder processes for one distro, as on several build machines: each is a separate
// worker process polling the same `build-<distro>` queue (one step at a time each here), both
// take steps, `conveyor workers` lists both, and a builder stopped with SIGTERM in the middle of a
// step loses no run: it lets the step run for its shutdown grace, then the step's next attempt
// runs on the other builder.
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { buildQueue } from '../../common/queues';
import type { PipelineResult } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import type { QueueReport } from '../../cli/commands/workers';
import { conveyor } from '../helpers/cli';
import { awsFor, clientFor, startSampleRun, tempDir, testConfig, uid } from '../helpers/stack';
import { runTree, startWorkerProcesses, type WorkerProcesses } from '../reliability/harness';

const EventType = temporal.api.enums.v1.EventType;

describe('two builder processes for one distro', () => {
  let config: ConveyorConfig;
  let client: Client;
  let workers: WorkerProcesses;
  let dir: string;
  const repository = `acme/builders-${uid()}`;

  beforeAll(async () => {
    dir = tempDir('builders');
    config = testConfig(
      [
        {
          name: repository,
          cloneUrl: path.join(dir, 'widget.git'),
          steps: { unit: 'sleep 2; make test', integration: 'sleep 2; make integration' },
          branches: [{ match: '*', channel: 'unstable' }],
        },
      ],
      // The grace is far longer than a step (2 s of sleep, and the sandbox's start): a step
      // caught by SIGTERM must finish on its builder even on a slow, loaded CI machine, where
      // a 3 s grace has run out and the step's second attempt ran on the other builder.
      { workers: { shutdownGraceSeconds: 30, maxConcurrentActivities: 1 } },
    );
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkerProcesses(config, {}, dir, { builders: 2 });
  }, 180000);

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  const start = (branch: string) =>
    startSampleRun(config, client, {
      repository,
      bare: path.join(dir, 'widget.git'),
      work: path.join(dir, 'work'),
      branch,
      message: branch,
    });

  /** The identity of the worker that ran each step of a run (its test stage's activities). */
  async function stepWorkers(rootId: string): Promise<string[]> {
    const out: string[] = [];
    for (const id of (await runTree(client, rootId)).filter((x) => x.endsWith('/test'))) {
      for (const e of (await client.workflow.getHandle(id).fetchHistory()).events ?? []) {
        if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
          out.push(e.activityTaskStartedEventAttributes?.identity ?? '');
      }
    }
    return out;
  }

  it('both take steps, and conveyor workers lists both', async () => {
    const runs = [];
    for (let i = 0; i < 4; i++) runs.push((await start(`line-${i}`)).workflowId);
    const results = (await Promise.all(runs.map((id) => client.workflow.getHandle(id).result()))) as PipelineResult[];
    expect(results.map((r) => r.status)).toEqual(runs.map(() => 'succeeded'));
    const identities = (await Promise.all(runs.map(stepWorkers))).flat();
    const byWorker = new Map<string, number>();
    for (const w of identities) byWorker.set(w, (byWorker.get(w) ?? 0) + 1);
    process.stdout.write(`many builders: 8 steps of 4 runs by ${JSON.stringify(Object.fromEntries(byWorker))}\n`);
    expect(byWorker.size).toBe(2);

    const listed = await conveyor(config.file, ['workers', '--json']);
    const reports = JSON.parse(listed.stdout) as QueueReport[];
    const queue = reports.find((q) => q.queue === buildQueue(Object.keys(config.distros)[0]))!;
    const pollers = queue.kinds.find((k) => k.type === 'activity')!.pollers.filter((p) => !p.stale);
    expect(pollers.map((p) => p.identity).sort()).toEqual([...byWorker.keys()].sort());
  }, 300000);

  it('a builder stopped with SIGTERM in the middle of a step loses no run', async () => {
    const { workflowId } = await start('sigterm');
    // Until a builder runs a step of it (the stage's pending activity names its worker).
    let taker = '';
    for (let i = 0; i < 150 && !taker; i++) {
      const d = await client.workflow
        .getHandle(`${workflowId}/test`)
        .describe()
        .catch(() => undefined);
      taker = d?.raw.pendingActivities?.find((a) => a.lastWorkerIdentity)?.lastWorkerIdentity ?? '';
      if (!taker) await new Promise((r) => setTimeout(r, 100));
    }
    expect(taker).not.toBe('');
    // Identities are `<pid>@<host>` of the worker's node process: SIGTERM to it alone, as systemd
    // (KillMode=mixed) sends it to the main process.
    const pid = Number(taker.split('@')[0]);
    const groupOf = (p: number) => Number(fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ')[2]);
    const victim = workers.builders.find((b) => groupOf(pid) === b.child.pid);
    if (!victim) throw new Error(`no builder process group holds ${taker}`);
    const restarts = victim.restarts;
    const stopped = Date.now();
    process.kill(pid, 'SIGTERM');
    const result = (await client.workflow.getHandle(workflowId).result()) as PipelineResult;
    process.stdout.write(
      `many builders: SIGTERM to the builder running a step; run ${result.status} ${((Date.now() - stopped) / 1000).toFixed(1)} s later\n` +
        `${workers.lines.join('\n')}\n`,
    );
    expect(result.status).toBe('succeeded');
    // The step it was running finished there, within the shutdown grace (no second attempt elsewhere),
    // and the supervisor started that builder again.
    const test = (await client.workflow.getHandle(`${workflowId}/test`).fetchHistory()).events ?? [];
    const started = test
      .filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
      .map((e) => ({
        by: e.activityTaskStartedEventAttributes?.identity,
        attempt: e.activityTaskStartedEventAttributes?.attempt,
      }));
    expect(started).toContainEqual({ by: taker, attempt: 1 });
    await victim.restarted(restarts + 1);
  }, 300000);
});
