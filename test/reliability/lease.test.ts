// Fault scenario 4 — lock leases against the real dev server and the real lock entity: a live holder renews its lease
// so nobody else is granted while it works, a vanished holder loses the lock after one lease, a
// waiter gives up after its bound with a message naming the holder, and the waiting shows up in
// the parent's notes. Leases of seconds stand for the production 15 minutes.
import { WorkflowFailedError, type ApplicationFailure, type Client } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import path from 'node:path';
import { createControlActivities } from '../../activities/control';
import { lockStateQuery } from '../../workflows/messages';
import { clientFor, silentLogger, testConfig, uid } from '../helpers/stack';
import type { HolderResult } from '../workflows/fixtures/lock-holders';

describe('lock leases', () => {
  let client: Client;
  let worker: Worker;
  let running: Promise<void>;
  let connection: NativeConnection;
  let taskQueue: string;

  beforeAll(async () => {
    const config = testConfig([]);
    taskQueue = config.temporal.taskQueue;
    client = await clientFor(config);
    connection = await NativeConnection.connect({ address: config.temporal.address });
    const bundle = await bundleWorkflowCode({
      workflowsPath: path.join(__dirname, '..', 'workflows', 'fixtures', 'lock-holders.ts'),
      logger: silentLogger,
    });
    worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle: bundle,
      activities: createControlActivities({ client, taskQueue }),
    });
    running = worker.run();
  });
  afterAll(async () => {
    worker?.shutdown();
    await running;
    await connection?.close();
    await client?.connection.close();
  });

  const start = (
    id: string,
    lockId: string,
    holdMs: number,
    more: { leaseSeconds?: number; waitSeconds?: number } = {},
  ) =>
    client.workflow.start('lockHolder', {
      taskQueue,
      workflowId: id,
      args: [{ lockId, holdMs, leaseSeconds: more.leaseSeconds ?? 2, waitSeconds: more.waitSeconds ?? 60 }],
    });

  it('never grants a second holder while the first lives past its lease', async () => {
    const lockId = `repo-lock/test-${uid()}/unstable`;
    const a = await start(`holder-a-${uid()}`, lockId, 9000);
    await new Promise((r) => setTimeout(r, 1000));
    const b = await start(`holder-b-${uid()}`, lockId, 100);
    const [ra, rb] = (await Promise.all([a.result(), b.result()])) as HolderResult[];
    // A held for 9 s with a 2 s lease: only its renewals kept B waiting.
    expect(ra.releasedAt - ra.grantedAt).toBeGreaterThanOrEqual(9000);
    expect(rb.grantedAt).toBeGreaterThanOrEqual(ra.releasedAt);
    const state = await client.workflow.getHandle(lockId).query(lockStateQuery);
    expect(state.granted).toBe(2);
    process.stdout.write(
      `lock lease: holder A ${ra.releasedAt - ra.grantedAt} ms with a 2 s lease; B granted ${rb.grantedAt - ra.releasedAt} ms after A released\n`,
    );
  });

  it('moves on after one lease when the holder vanished', async () => {
    const lockId = `repo-lock/test-${uid()}/unstable`;
    const a = await start(`holder-a-${uid()}`, lockId, 60000);
    for (
      let i = 0;
      i < 50 &&
      !(
        await client.workflow
          .getHandle(lockId)
          .query(lockStateQuery)
          .catch(() => undefined)
      )?.holder;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await a.terminate('vanished');
    const t0 = Date.now();
    const b = await start(`holder-b-${uid()}`, lockId, 100);
    const rb = (await b.result()) as HolderResult;
    expect(rb.grantedAt - t0).toBeLessThan(15000);
  });

  it('gives up waiting after its bound, naming the holder, and leaves the queue', async () => {
    const lockId = `repo-lock/test-${uid()}/unstable`;
    const holderId = `holder-a-${uid()}`;
    const a = await start(holderId, lockId, 12000);
    await new Promise((r) => setTimeout(r, 1000));
    const b = await start(`holder-b-${uid()}`, lockId, 100, { waitSeconds: 2 });
    const err = await b.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('LockTimeout');
    expect(cause.message).toBe(`waited 2 s for lock ${lockId}, held by ${holderId}; retry the stage when it is free`);
    const state = await client.workflow.getHandle(lockId).query(lockStateQuery);
    expect(state.queue).toEqual([]);
    await a.result();
  });

  it('tells the parent what the stage waits for, and when it stops waiting', async () => {
    const lockId = `repo-lock/test-${uid()}/unstable`;
    const holderId = `holder-a-${uid()}`;
    const a = await start(holderId, lockId, 4000);
    await new Promise((r) => setTimeout(r, 1000));
    const parent = await client.workflow.start('noteCollector', {
      taskQueue,
      workflowId: `collector-${uid()}`,
      args: [{ lockId, holdMs: 100, leaseSeconds: 2, waitSeconds: 60 }],
    });
    const notes = (await parent.result()) as (string | null)[];
    expect(notes).toEqual([`waiting for lock ${lockId}, held by ${holderId}`, null]);
    await a.result();
  });
});
