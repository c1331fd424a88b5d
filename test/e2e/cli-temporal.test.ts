// The README's promise that a run is operable with the plain Temporal CLI alone: its `status`
// query, and the `retry` and `abort` signals with JSON input, against real runs (the Temporal CLI
// bootstrap builds, as a subprocess; the workers answer from this process meanwhile).
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { commitSample } from '../../cli/demo/sample-repo';
import type { PipelineResult, PipelineStatus } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import { conveyor, temporal } from '../helpers/cli';
import { awsFor, clientFor, startWorkers, tempDir, testConfig, uid, waitForStatus } from '../helpers/stack';

describe('a run operated with the plain temporal CLI', () => {
  const id = uid();
  const flakyRepo = `acme/tflaky-${id}`;
  const brokenRepo = `acme/tbroken-${id}`;
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let sha: string;

  beforeAll(async () => {
    const dir = tempDir('cli-temporal');
    const bare = path.join(dir, 'widget.git');
    const marker = path.join(dir, 'marker');
    config = testConfig([
      {
        name: flakyRepo,
        cloneUrl: bare,
        steps: { unit: `test -f ${marker} || { touch ${marker}; echo flaky failure; exit 1; }` },
        // The flakiness lives in a file of the host, which a sandboxed step cannot see.
        more: { sandbox: { mode: 'none' } },
      },
      { name: brokenRepo, cloneUrl: bare, steps: { unit: 'echo always broken; exit 3' } },
    ]);
    sha = (await commitSample(bare, path.join(dir, 'work'), { message: 'temporal cli' })).sha;
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
  });

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  const address = () => ['--address', config.temporal.address, '--namespace', config.temporal.namespace];

  /** `temporal workflow query --type status` as the README shows it, its JSON result parsed. */
  async function queryStatus(wf: string): Promise<PipelineStatus> {
    const r = await temporal(['workflow', 'query', '--workflow-id', wf, '--type', 'status', ...address()]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const json = r.stdout.slice(r.stdout.indexOf('{'), r.stdout.lastIndexOf('}') + 1);
    return JSON.parse(json) as PipelineStatus;
  }

  it('queries the status and signals retry with {"stage":"test"}: the stage re-runs and the run succeeds', async () => {
    const wf = (await conveyor(config.file, ['trigger', flakyRepo, 'main'])).stdout.trim();
    expect(wf).toBe(`pipeline/${flakyRepo}/main/${sha}`);
    await waitForStatus(client, wf, 'awaiting-operator');

    const status = await queryStatus(wf);
    expect(status).toMatchObject({ workflowId: wf, status: 'awaiting-operator', stage: 'test', sha });
    expect(status.stages[0]).toMatchObject({ name: 'test', state: 'failed', attempt: 1 });
    expect(status.stages[0].tail).toContain('flaky failure');

    const signal = await temporal([
      'workflow',
      'signal',
      '--workflow-id',
      wf,
      '--name',
      'retry',
      '--input',
      '{"stage":"test"}',
      ...address(),
    ]);
    expect(signal).toMatchObject({ code: 0, stderr: '' });
    expect(signal.stdout).toContain('Signal workflow succeeded');

    const result = (await client.workflow.getHandle(wf).result()) as PipelineResult;
    expect(result.status).toBe('succeeded');
    const done = await queryStatus(wf);
    expect(done).toMatchObject({ status: 'succeeded' });
    expect(done.stages[0]).toMatchObject({ state: 'succeeded', attempt: 2, workflowId: `${wf}/test#2` });

    // The runs the Web UI filters on, from the Temporal CLI too.
    const list = await temporal([
      'workflow',
      'list',
      '--query',
      `WorkflowType = 'pipeline' AND ConveyorRepository = '${flakyRepo}' AND ConveyorStatus = 'succeeded'`,
      '-o',
      'json',
      ...address(),
    ]);
    expect(list.code).toBe(0);
    expect(
      (JSON.parse(list.stdout) as { execution: { workflowId: string } }[]).map((w) => w.execution.workflowId),
    ).toEqual([wf]);
  });

  it('signals abort with {"reason": …}: the run ends aborted with that reason', async () => {
    const wf = (await conveyor(config.file, ['trigger', brokenRepo, 'main'])).stdout.trim();
    await waitForStatus(client, wf, 'awaiting-operator');
    // As an Update the run answers for itself: a stage that does not wait is refused with the reason.
    const refused = await temporal([
      'workflow',
      'update',
      'execute',
      '--workflow-id',
      wf,
      '--name',
      'retry',
      '--input',
      '{"stage":"publish","by":"temporal-cli"}',
      ...address(),
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`stage publish does not wait for a retry in ${wf} (waiting: test)`);
    const signal = await temporal([
      'workflow',
      'signal',
      '--workflow-id',
      wf,
      '--name',
      'abort',
      '--input',
      '{"reason":"broken on purpose","by":"temporal-cli"}',
      ...address(),
    ]);
    expect(signal).toMatchObject({ code: 0, stderr: '' });
    const err = await client.workflow
      .getHandle(wf)
      .result()
      .catch((e: unknown) => e);
    expect((err as { cause?: { type?: string; message?: string } }).cause).toMatchObject({
      type: 'Aborted',
      message: 'aborted by temporal-cli: broken on purpose',
    });
    expect(await queryStatus(wf)).toMatchObject({
      status: 'aborted',
      failure: 'aborted by temporal-cli: broken on purpose',
    });
  });
});
