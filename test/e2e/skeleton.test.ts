// The walking skeleton through the real HTTP API: a signed push starts the pipeline, the test
// stage clones the exact sha and runs `unit` and `integration` in parallel on the build queue.
import fs from 'node:fs';
import path from 'node:path';
import type http from 'node:http';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import pino from 'pino';
import { createApiServer, listen } from '../../api/server';
import { commitSample } from '../../cli/demo/sample-repo';
import { pushPayload, sendWebhook } from '../../cli/webhook-client';
import { stageId } from '../../common/ids';
import { BranchKey, CommitKey, RepositoryKey, StatusKey } from '../../common/search-attributes';
import type { PipelineResult, TestStageResult } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import { abortSignal, retrySignal, statusQuery } from '../../workflows/messages';
import { awsFor, clientFor, startWorkers, tempDir, testConfig, waitForStatus } from '../helpers/stack';

const SECRET = 'test-webhook-secret';

describe('walking skeleton: webhook → pipeline → test stage', () => {
  let config: ConveyorConfig;
  let client: Client;
  let server: http.Server;
  let apiUrl: string;
  let workers: { stop(): Promise<void> };
  let bare: string;
  let work: string;

  beforeAll(async () => {
    const dir = tempDir('skeleton');
    bare = path.join(dir, 'widget.git');
    work = path.join(dir, 'work');
    config = testConfig([
      { name: 'acme/widget', cloneUrl: bare, steps: { unit: 'make test', integration: 'make integration' } },
    ]);
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
    server = createApiServer({ config, client, logger: pino({ level: 'silent' }), secret: SECRET });
    apiUrl = `http://127.0.0.1:${await listen(server, 0)}`;
  });

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    await workers?.stop();
    await client?.connection.close();
  });

  const push = (sha: string, before?: string) =>
    sendWebhook(
      apiUrl,
      SECRET,
      'push',
      pushPayload({ repository: 'acme/widget', branch: 'main', sha, before, message: 'change' }),
    );

  it('answers /healthz', async () => {
    const res = await fetch(`${apiUrl}/healthz`);
    expect(res.status).toBe(200);
  });

  it('runs unit and integration at the pushed sha, sets search attributes, and a redelivery starts nothing', async () => {
    const commit = await commitSample(bare, work, { message: 'first' });
    const res = await push(commit.sha, commit.before);
    expect(res.status).toBe(202);
    expect(res.body.workflowId).toBe(`pipeline/acme/widget/main/${commit.sha}`);
    const id = res.body.workflowId as string;

    const handle = client.workflow.getHandle(id);
    const result = await handle.result();
    expect(result.status).toBe('succeeded');
    // Steps ran sandboxed (the default), and the run's status says so.
    expect((await handle.query(statusQuery)).sandbox).toBe('bwrap');

    const stage = (await client.workflow.getHandle(stageId(id, 'test')).result()) as TestStageResult;
    expect(stage.steps.map((s) => s.step).sort()).toEqual(['integration', 'unit']);
    for (const s of stage.steps) {
      expect(s.exitCode).toBe(0);
      expect(s.headSha).toBe(commit.sha);
      expect(s.tail).toContain(`ok at ${commit.sha}`);
    }
    // Logs are in the artifacts bucket under the stage's workflow ID.
    const aws = await awsFor(config);
    const unitLog = stage.steps.find((s) => s.step === 'unit')!.logKey;
    const obj = await aws.s3.send(new GetObjectCommand({ Bucket: config.storage.artifacts.slice(5), Key: unitLog }));
    expect(await obj.Body!.transformToString()).toContain(`unit: ok at ${commit.sha}`);

    // The Web UI names what each activity does: summaries on the scheduled activities.
    const stageHistory = await client.workflow.getHandle(stageId(id, 'test')).fetchHistory();
    const summaries = (stageHistory.events ?? [])
      .filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => (e.userMetadata?.summary ? defaultPayloadConverter.fromPayload<string>(e.userMetadata.summary) : ''));
    expect(summaries.sort()).toEqual([
      `integration: make integration at ${commit.sha.slice(0, 12)}`,
      `unit: make test at ${commit.sha.slice(0, 12)}`,
    ]);

    const desc = await handle.describe();
    expect(desc.typedSearchAttributes.get(RepositoryKey)).toBe('acme/widget');
    expect(desc.typedSearchAttributes.get(BranchKey)).toBe('main');
    expect(desc.typedSearchAttributes.get(CommitKey)).toBe(commit.sha);
    expect(desc.typedSearchAttributes.get(StatusKey)).toBe('succeeded');

    const again = await push(commit.sha, commit.before);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ status: 'existing', workflowId: id });
    const count = await client.workflow.count(`WorkflowId = "${id}"`);
    expect(count.count).toBe(1);
  });

  it('parks a run whose unit command fails in awaiting-operator, with exit code and log tail, until aborted', async () => {
    const commit = await commitSample(bare, work, {
      message: 'break it',
      mutate: (d) => fs.writeFileSync(path.join(d, 'FAIL_UNIT'), 'yes\n'),
    });
    const res = await push(commit.sha, commit.before);
    expect(res.status).toBe(202);
    const id = res.body.workflowId as string;
    const handle = client.workflow.getHandle(id);
    const status = await waitForStatus(client, id, 'awaiting-operator');
    const test = status.stages.find((s) => s.name === 'test')!;
    expect(test.state).toBe('failed');
    expect(test.error).toBe('unit exited with code 2');
    expect(test.tail).toContain('unit: failing on purpose');
    expect(test.logKeys.some((k) => k.endsWith('/test/unit.log'))).toBe(true);
    expect((await handle.describe()).typedSearchAttributes.get(StatusKey)).toBe('awaiting-operator');

    // The child's own failure carries both outcomes: integration passed, unit failed with its code.
    const childErr = await client.workflow
      .getHandle(stageId(id, 'test'))
      .result()
      .catch((e: unknown) => e);
    const cause = (childErr as { cause?: { type?: string; details?: unknown[] } }).cause;
    expect(cause?.type).toBe('StageFailed');
    const details = cause?.details?.[0] as {
      passed: { step: string }[];
      failed: { step: string; exitCode: number; tail: string }[];
    };
    expect(details.passed.map((p) => p.step)).toEqual(['integration']);
    expect(details.failed[0]).toMatchObject({ step: 'unit', exitCode: 2 });
    expect(details.failed[0].tail).toContain('failing on purpose');

    await handle.signal(abortSignal, { reason: 'broken commit', by: 'tester' });
    const err = await handle.result().catch((e: unknown) => e);
    expect((err as { cause?: { type?: string; message?: string } }).cause).toMatchObject({
      type: 'Aborted',
      message: 'aborted by tester: broken commit',
    });
    const final = await handle.query(statusQuery);
    expect(final.status).toBe('aborted');
    expect((await handle.describe()).typedSearchAttributes.get(StatusKey)).toBe('aborted');
  });

  it('re-runs only the failed stage as a new child attempt on retry and continues', async () => {
    const marker = path.join(tempDir('flaky'), 'marker');
    const flaky = testConfig([
      {
        name: 'acme/flaky',
        cloneUrl: bare,
        steps: {
          unit: `test -f ${marker} || { touch ${marker}; echo flaky failure; exit 1; }`,
          integration: 'make integration',
        },
        // The flakiness lives in a file of the host, which a sandboxed step cannot see.
        more: { sandbox: { mode: 'none' } },
      },
    ]);
    await awsFor(flaky);
    const flakyWorkers = await startWorkers(flaky);
    const flakyClient = await clientFor(flaky);
    const flakyServer = createApiServer({
      config: flaky,
      client: flakyClient,
      logger: pino({ level: 'silent' }),
      secret: SECRET,
    });
    const flakyApi = `http://127.0.0.1:${await listen(flakyServer, 0)}`;
    try {
      const commit = await commitSample(bare, work, { message: 'flaky' });
      const res = await sendWebhook(
        flakyApi,
        SECRET,
        'push',
        pushPayload({ repository: 'acme/flaky', branch: 'main', sha: commit.sha }),
      );
      const id = res.body.workflowId as string;
      const parked = await waitForStatus(flakyClient, id, 'awaiting-operator');
      expect(parked.sandbox).toBe('none');
      const handle = flakyClient.workflow.getHandle(id);
      await handle.signal(retrySignal, { stage: 'test', by: 'tester' });
      const result = (await handle.result()) as PipelineResult;
      expect(result.status).toBe('succeeded');
      const test = result.stages.find((s) => s.name === 'test')!;
      expect(test).toMatchObject({ state: 'succeeded', attempt: 2, workflowId: `${id}/test#2` });
      expect((await flakyClient.workflow.getHandle(`${id}/test#2`).describe()).status.name).toBe('COMPLETED');
      expect((await flakyClient.workflow.getHandle(`${id}/test`).describe()).status.name).toBe('FAILED');
    } finally {
      await new Promise((r) => flakyServer.close(r));
      await flakyWorkers.stop();
      await flakyClient.connection.close();
    }
  });

  it('refuses a wrongly signed push with 401 and starts nothing', async () => {
    const commit = await commitSample(bare, work, { message: 'unsigned' });
    const res = await sendWebhook(
      apiUrl,
      'not-the-secret',
      'push',
      pushPayload({ repository: 'acme/widget', branch: 'main', sha: commit.sha }),
    );
    expect(res.status).toBe(401);
    const count = await client.workflow.count(`WorkflowId = "pipeline/acme/widget/main/${commit.sha}"`);
    expect(count.count).toBe(0);
  });

  it('ignores pushes to branches that are not monitored', async () => {
    const commit = await commitSample(bare, work, { branch: 'feature/x', message: 'feature' });
    const res = await sendWebhook(
      apiUrl,
      SECRET,
      'push',
      pushPayload({ repository: 'acme/widget', branch: 'feature/x', sha: commit.sha }),
    );
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ status: 'ignored', reason: 'ignored: branch not monitored' });
  });
});
