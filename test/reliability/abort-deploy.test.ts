// Fault suite, scenario 5 (#12): an abort, and a terminate, in the middle of a deploy. Real local
// Debian hosts (one deb distro, two hosts, batches of one) are upgraded by real pipelines; the
// second build's deploy is held at a known point without mocks: the repository's smoke step, run on
// each host after its upgrade, waits while /etc/conveyor-hold exists in that host's root. With host
// 1 upgraded and its smoke waiting, the run is aborted through the operator Update (what `conveyor
// abort` sends), or the pipeline is terminated. Either way every touched host must be back on the
// baseline build (dpkg in the host's root says so), the smoke process must be gone, and the fleet's
// deploy lock must be free, and not before the rollback ended. Figures are printed and asserted.
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { PipelineResult } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import { deployLockId, stageId } from '../../common/ids';
import { MessageNames } from '../../common/message-names';
import { operatorUpdate } from '../../cli/commands/context';
import { abortUpdate, lockStateQuery, statusQuery } from '../../workflows/messages';
import { makeLocalHost, registerHosts } from '../helpers/hosts';
import { awsFor, clientFor, startSampleRun, startWorkers, tempDir, testConfig, uid } from '../helpers/stack';

const EventType = temporal.api.enums.v1.EventType;
/** Bound on the time from the abort or terminate to a free lock (#12: "released within a bounded time"). */
const LOCK_FREE_WITHIN_MS = 30000;
const HOLD = 'etc/conveyor-hold';
const figure = (line: string) => console.log(line);

describe('abort and terminate during a deploy (fault suite 5)', () => {
  // The token makes this file's smoke processes findable in /proc (their sh -c carries the script).
  const token = `abort-deploy-${uid()}`;
  const smoke = `while [ -f /${HOLD} ]; do sleep 0.2; done; widget --version # ${token}`;
  const repository = `acme/abort-${uid()}`;
  const role = `abort-${uid()}`;
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let bare: string;
  let work: string;
  let distro: string;
  let lockId: string;
  let baseline: string;
  const roots: string[] = [];

  beforeAll(async () => {
    const dir = tempDir('abort-deploy');
    bare = path.join(dir, 'widget.git');
    work = path.join(dir, 'work');
    const hostsDir = path.join(dir, 'hosts');
    config = testConfig(
      [
        {
          name: repository,
          cloneUrl: bare,
          steps: { unit: 'true', package: 'make package', smoke },
          more: { staging: { tags: { Environment: 'staging', Role: role }, batchSize: 1 }, packages: ['widget'] },
        },
      ],
      { fleet: { hostsDir } },
    );
    [distro] = Object.keys(config.distros);
    lockId = deployLockId('staging', distro);
    const aws = await awsFor(config);
    const specs = [];
    for (const n of [1, 2]) {
      const name = `${distro}-${n}`;
      roots.push(await makeLocalHost(hostsDir, name, 'deb'));
      specs.push({
        name,
        distro,
        executor: 'local' as const,
        tags: { Environment: 'staging', Role: role },
        root: roots[n - 1],
      });
    }
    await registerHosts(aws.ec2, specs);
    client = await clientFor(config);
    workers = await startWorkers(config);

    // The baseline: build 1 on both hosts, through a whole run.
    const t0 = Date.now();
    const { workflowId } = await start('baseline');
    const result = (await client.workflow.getHandle(workflowId).result()) as PipelineResult;
    expect(result.status).toBe('succeeded');
    baseline = result.version!;
    expect(roots.map(installed)).toEqual([baseline, baseline]);
    figure(`baseline ${baseline} deployed to 2 hosts in ${Date.now() - t0} ms`);
  }, 300000);

  afterAll(async () => {
    for (const root of roots) fs.rmSync(path.join(root, HOLD), { force: true });
    await workers?.stop();
    await client?.connection.close();
  });

  const start = (message: string) => startSampleRun(config, client, { repository, bare, work, message });

  /** The installed widget's version per dpkg's database in the host root; null when not installed. */
  const installed = (root: string): string | null => {
    const db = fs.readFileSync(path.join(root, 'var/lib/dpkg/status'), 'utf8');
    const stanza = db.split(/\n\n+/).find((s) => /^Package: widget$/m.test(s));
    if (!stanza || !/^Status: install ok installed$/m.test(stanza)) return null;
    return /^Version: (.+)$/m.exec(stanza)?.[1] ?? null;
  };

  /** PIDs of this file's smoke processes still alive on the machine (bwrap and the host's sh). */
  const smokeProcesses = (): number[] =>
    fs
      .readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
      .filter((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(token);
        } catch {
          return false; // exited meanwhile
        }
      })
      .map(Number);

  const lockHolder = async () => (await client.workflow.getHandle(lockId).query(lockStateQuery)).holder;

  const until = async <T>(what: string, f: () => T | undefined | Promise<T | undefined>, ms = 180000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  /**
   * Starts a run with both hosts held at their smoke step, and waits until the first batch's host
   * runs the new build and its smoke waits. Returns the run, its build and the touched host's index.
   */
  async function holdMidDeploy(message: string) {
    expect(smokeProcesses()).toEqual([]); // nothing left of an earlier run
    for (const root of roots) fs.writeFileSync(path.join(root, HOLD), 'held by abort-deploy.test.ts\n');
    const { workflowId } = await start(message);
    const version = await until('a host upgraded and its smoke step waiting', async () => {
      const v = (await client.workflow.getHandle(workflowId).query(statusQuery)).version;
      return v && roots.some((r) => installed(r) === v) && smokeProcesses().length > 0 ? v : undefined;
    });
    const versions = roots.map(installed);
    // Batches of one: exactly one host was upgraded, and the other one not touched yet.
    expect(version).toMatch(/^1\.0\.0-\d+$/);
    expect(version).not.toBe(baseline);
    expect([...versions].sort()).toEqual([baseline, version].sort());
    expect(await lockHolder()).toMatchObject({ requester: stageId(workflowId, 'deploy', distro) });
    return { workflowId, version, touched: versions.indexOf(version) };
  }

  /**
   * From `t0`, polls until the lock is free; at that moment the hosts must already be back on the
   * baseline and the smoke gone (the lock is released only once nothing of the deploy touches a host).
   */
  async function lockFreedAfter(t0: number) {
    let smokeStoppedMs: number | undefined;
    await until(
      'the deploy lock to be free',
      async () => {
        smokeStoppedMs ??= smokeProcesses().length === 0 ? Date.now() - t0 : undefined;
        return !(await lockHolder());
      },
      LOCK_FREE_WITHIN_MS + 30000,
    );
    const ms = Date.now() - t0;
    return { ms, smokeStoppedMs, hosts: roots.map(installed), smoke: smokeProcesses() };
  }

  it('abort during a deploy: the run ends aborted, the touched host is rolled back, the lock is free', async () => {
    const run = await holdMidDeploy('abort me');
    const handle = client.workflow.getHandle(run.workflowId);
    const t0 = Date.now();
    const answer = await operatorUpdate(
      client,
      config,
      run.workflowId,
      abortUpdate,
      { reason: 'abort during the deploy', by: 'abort-deploy.test' },
      (s) => `ended already (${s.status})`,
    );
    expect(answer).toEqual({ accepted: true, detail: 'aborted' });
    const freed = await lockFreedAfter(t0);
    await expect(handle.result()).rejects.toThrow();
    const ended = Date.now() - t0;
    const status = await handle.query(statusQuery);
    figure(
      `abort: smoke stopped ${freed.smokeStoppedMs} ms, lock free ${freed.ms} ms after the abort, run ended after ${ended} ms; ` +
        `host ${run.touched + 1} was upgraded to ${run.version}; hosts now ${freed.hosts.join(', ')} (baseline ${baseline})`,
    );
    expect(status.status).toBe('aborted');
    expect(status.failure).toBe('aborted by abort-deploy.test: abort during the deploy');
    expect(status.stages.find((s) => s.name === 'deploy')?.state).toBe('failed');
    // Already true when the lock became free, not only by the end of the run.
    expect(freed.hosts).toEqual([baseline, baseline]);
    expect(freed.smoke).toEqual([]);
    expect(freed.ms).toBeLessThanOrEqual(LOCK_FREE_WITHIN_MS);
    expect(await lockHolder()).toBeUndefined();
    expect(smokeProcesses()).toEqual([]);
    const deploy = await client.workflow.getHandle(stageId(run.workflowId, 'deploy', distro)).describe();
    expect(deploy.status.name).toBe('CANCELLED');
  });

  it('terminate during a deploy: the deploy child is cancelled, rolls back and releases the lock in bounded time', async () => {
    const run = await holdMidDeploy('terminate me');
    const deployId = stageId(run.workflowId, 'deploy', distro);
    const t0 = Date.now();
    await client.workflow.getHandle(run.workflowId).terminate('terminated during the deploy by abort-deploy.test');
    const freed = await lockFreedAfter(t0);
    const child = client.workflow.getHandle(deployId);
    await until('the deploy child to close', async () => (await child.describe()).status.name !== 'RUNNING', 30000);
    figure(
      `terminate: smoke stopped ${freed.smokeStoppedMs} ms, lock free ${freed.ms} ms after the terminate (bound ${LOCK_FREE_WITHIN_MS} ms); ` +
        `host ${run.touched + 1} was upgraded to ${run.version}; hosts now ${freed.hosts.join(', ')} (baseline ${baseline})`,
    );
    expect((await client.workflow.getHandle(run.workflowId).describe()).status.name).toBe('TERMINATED');
    expect(freed.hosts).toEqual([baseline, baseline]);
    expect(freed.smoke).toEqual([]);
    expect(freed.ms).toBeLessThanOrEqual(LOCK_FREE_WITHIN_MS);

    // Cancelled, not killed: the parent-close policy asked it to cancel, and its own code ran to the
    // end: the smoke activity's cancellation was awaited, the rollback ran, the lock was released.
    expect((await child.describe()).status.name).toBe('CANCELLED');
    const events = (await child.fetchHistory()).events ?? [];
    const kinds = events.map((e) => e.eventType);
    expect(kinds.at(-1)).toBe(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED);
    expect(kinds).not.toContain(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED);
    const cancelAt = kinds.indexOf(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED);
    expect(cancelAt).toBeGreaterThan(0);
    const after = events.slice(cancelAt);
    expect(after.some((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED)).toBe(true);
    const rollbacks = after.filter(
      (e) =>
        e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
        e.activityTaskScheduledEventAttributes?.activityType?.name === 'upgradeHost',
    );
    expect(rollbacks).toHaveLength(1);
    expect(
      after.filter(
        (e) =>
          e.eventType === EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED &&
          e.signalExternalWorkflowExecutionInitiatedEventAttributes?.signalName === MessageNames.releaseLock,
      ),
    ).toHaveLength(1);
    expect(await lockHolder()).toBeUndefined();
    expect(smokeProcesses()).toEqual([]);
  });
});
