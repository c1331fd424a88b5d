// The operator's commands as subprocesses against real runs: `conveyor trigger` starts them,
// `watch` follows a run through awaiting-operator to its end (a retry sent from elsewhere while it
// watches), `status` shows the failure and its log tail, `retry` and `abort` act only on runs
// that wait, and every error names what was wrong and exits 1.
import fs from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import type { Client } from '@temporalio/client';
import { decidePush } from '../../api/github-push';
import { startPipeline } from '../../api/start-pipeline';
import { commitSample } from '../../cli/demo/sample-repo';
import { pushPayload } from '../../cli/webhook-client';
import { freePort } from '../../cli/local-stack/services';
import type { PipelineStatus } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import { conveyor } from '../helpers/cli';
import { awsFor, clientFor, startWorkers, tempDir, testConfig, uid, waitForStatus } from '../helpers/stack';

describe('conveyor status, watch, retry, abort', () => {
  const id = uid();
  const flakyRepo = `acme/flaky-${id}`;
  const brokenRepo = `acme/broken-${id}`;
  const gatedRepo = `acme/gated-${id}`;
  const rejectedRepo = `acme/rejected-${id}`;
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let bare: string;
  let sha: string;

  beforeAll(async () => {
    const dir = tempDir('cli-operator');
    bare = path.join(dir, 'widget.git');
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
      // Both build the sample's `widget`: a package name belongs to one repository per channel.
      ...[gatedRepo, rejectedRepo].map((name, i) => ({
        name,
        cloneUrl: bare,
        branches: [{ match: 'main', channel: i === 0 ? 'unstable' : 'testing', approval: true }],
        steps: { unit: 'true', package: 'make package' },
        more: { packages: ['widget'] },
      })),
    ]);
    sha = (await commitSample(bare, path.join(dir, 'work'), { message: 'operator' })).sha;
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
  });

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  const cli = (...args: string[]) => conveyor(config.file, args);

  it('watch follows a run through awaiting-operator until a retry from another shell lets it succeed', async () => {
    const trigger = await cli('trigger', flakyRepo, 'main');
    expect(trigger).toMatchObject({ code: 0, stdout: `pipeline/${flakyRepo}/main/${sha}\n` });
    const wf = trigger.stdout.trim();
    expect(trigger.stderr).toContain(`started ${flakyRepo} main @ ${sha.slice(0, 12)}`);

    const watching = conveyor(config.file, ['watch', wf, '--interval', '200'], { timeoutMs: 60000 });
    await waitForStatus(client, wf, 'awaiting-operator');

    const status = await cli('status', wf);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^${wf}  awaiting-operator`));
    expect(status.stdout).toMatch(/test\s+▓+\s+failed/);
    expect(status.stdout).toContain('test failed (attempt 1');
    expect(status.stdout).toContain('| flaky failure');
    expect(status.stdout).toMatch(/log: logs\/.*\/test\/unit\.log/);
    expect(status.stdout).toContain(`waiting for an operator: conveyor retry ${wf}`);
    expect(status.stdout).toContain('sandbox: NONE, repository steps ran unsandboxed');
    const json = JSON.parse((await cli('status', wf, '--json')).stdout) as PipelineStatus;
    expect(json).toMatchObject({ workflowId: wf, status: 'awaiting-operator', stage: 'test', sandbox: 'none' });

    const wrongStage = await cli('retry', wf, '--stage', 'package');
    expect(wrongStage.code).toBe(1);
    expect(wrongStage.stderr).toBe(`conveyor: stage package does not wait for a retry in ${wf} (waiting: test)\n`);

    // The watcher is still following: it has not exited while the run waits.
    expect(watching.child.exitCode).toBeNull();
    const retry = await cli('retry', wf, '--stage', 'test', '--by', 'ops');
    expect(retry).toMatchObject({ code: 0, stdout: `retrying ${wf}: test\n` });

    const watched = await watching;
    expect(watched.code).toBe(0);
    const lines = watched.stdout.split('\n');
    // The run's status when it changes (the first one seen depends on how fast the watcher started).
    expect(lines[0]).toMatch(new RegExp(`^${wf}  (running|awaiting-operator)$`));
    expect(lines).toContain(`${wf}  awaiting-operator`);
    expect(lines.indexOf(`${wf}  awaiting-operator`)).toBeLessThan(lines.indexOf(`${wf}  succeeded`));
    expect(watched.stdout).toContain('| flaky failure');
    expect(watched.stdout).toMatch(/test\s+█+\s+succeeded\s+[\d.]+s \(attempt 2\)/);
    expect(lines.filter(Boolean).at(-1)).toBe(`${wf} ended: succeeded`);
    // Who sent what is recorded on the run.
    const after = JSON.parse((await cli('status', wf, '--json')).stdout) as PipelineStatus;
    expect(after.actions).toEqual([
      expect.objectContaining({ action: 'retry', by: 'ops', detail: 'test', accepted: true }),
    ]);

    const again = await cli('retry', wf);
    expect(again).toMatchObject({
      code: 1,
      stderr: `conveyor: nothing awaits an operator in ${wf}: the run is succeeded\n`,
    });
    const lateAbort = await cli('abort', wf, '--reason', 'too late');
    expect(lateAbort).toMatchObject({
      code: 1,
      stderr: `conveyor: ${wf} has already ended (succeeded): nothing to abort\n`,
    });
    // A second trigger of the same commit finds the run instead of starting another.
    const twice = await cli('trigger', flakyRepo, 'main');
    expect(twice).toMatchObject({ code: 0, stdout: `${wf}\n` });
    expect(twice.stderr).toContain('exists already');
  });

  it('abort ends a waiting run as aborted; watch exits 1 with that outcome', async () => {
    const wf = (await cli('trigger', brokenRepo, 'main', '--sha', sha)).stdout.trim();
    expect(wf).toBe(`pipeline/${brokenRepo}/main/${sha}`);
    const watching = conveyor(config.file, ['watch', wf, '--interval', '200'], { timeoutMs: 60000 });
    await waitForStatus(client, wf, 'awaiting-operator');

    const noReason = await cli('abort', wf);
    expect(noReason.code).toBe(1);
    expect(noReason.stderr).toContain("required option '--reason <text>' not specified");

    const abort = await cli('abort', wf, '--reason', 'broken commit', '--by', 'ops');
    expect(abort).toMatchObject({ code: 0, stdout: `aborted ${wf}\n` });
    const watched = await watching;
    expect(watched.code).toBe(1);
    expect(watched.stdout).toContain('| always broken');
    expect(watched.stdout).toContain('aborted by ops: broken commit');
    expect(watched.stdout.trimEnd().split('\n').at(-1)).toBe(`${wf} ended: aborted`);

    const status = JSON.parse((await cli('status', wf, '--json')).stdout) as PipelineStatus;
    expect(status).toMatchObject({ status: 'aborted', failure: 'aborted by ops: broken commit' });
    expect(status.actions).toEqual([
      expect.objectContaining({ action: 'abort', by: 'ops', detail: 'broken commit', accepted: true }),
    ]);
  });

  it('approve lets a run at its approval gate promote; reject ends one as rejected', async () => {
    const [gated, rejected] = (
      await Promise.all([cli('trigger', gatedRepo, 'main'), cli('trigger', rejectedRepo, 'main')])
    ).map((r) => r.stdout.trim());
    await Promise.all([
      waitForStatus(client, gated, 'awaiting-approval'),
      waitForStatus(client, rejected, 'awaiting-approval'),
    ]);
    const status = await cli('status', gated);
    expect(status.stdout).toContain(`waiting for approval: conveyor approve ${gated}`);
    const [notFailed, noReason] = await Promise.all([cli('retry', gated), cli('reject', rejected)]);
    expect(notFailed.stderr).toBe(`conveyor: nothing awaits an operator in ${gated}: the run is awaiting-approval\n`);
    expect(noReason.stderr).toContain("required option '--reason <text>' not specified");
    // A signal the run ignores (the plain temporal CLI skips conveyor's checks) is recorded as ignored.
    await client.workflow.getHandle(gated).signal('retry', { by: 'eve' });
    for (let i = 0; i < 50; i++) {
      const s = await client.workflow.getHandle(gated).query<PipelineStatus>('status');
      if (s.actions?.some((a) => a.by === 'eve')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await cli('status', gated)).stdout).toContain('retry by eve: ignored, nothing waited for it');

    const watching = conveyor(config.file, ['watch', rejected, '--interval', '200']);
    const [approve, reject] = await Promise.all([
      cli('approve', gated, '--by', 'ops', '--comment', 'ship it'),
      cli('reject', rejected, '--by', 'ops', '--reason', 'not this one'),
    ]);
    expect(approve).toMatchObject({ code: 0, stdout: `approved ${gated}\n` });
    expect(reject).toMatchObject({ code: 0, stdout: `rejected ${rejected}\n` });
    expect(((await client.workflow.getHandle(gated).result()) as { status: string }).status).toBe('succeeded');
    const watched = await watching;
    expect(watched.code).toBe(1);
    expect(watched.stdout).toContain('approval: rejected by ops: not this one');
    expect(watched.stdout.trimEnd().split('\n').at(-1)).toBe(`${rejected} ended: rejected`);

    const again = await cli('approve', gated);
    expect(again).toMatchObject({
      code: 1,
      stderr: `conveyor: nothing awaits approval in ${gated}: the run is succeeded\n`,
    });
    expect((await cli('status', gated)).stdout).toContain('approval: approved by ops: ship it');
  });

  it('names an unknown workflow, a workflow that is no pipeline, and a missing config', async () => {
    const missing = `pipeline/${flakyRepo}/main/${'0'.repeat(40)}`;
    const lookups = [
      ['status', missing],
      ['watch', missing],
      ['retry', missing],
      ['abort', missing, '--reason', 'x'],
    ];
    const results = await Promise.all(lookups.map((args) => cli(...args)));
    results.forEach((r, i) =>
      expect({ args: lookups[i], code: r.code, stderr: r.stderr }).toEqual({
        args: lookups[i],
        code: 1,
        stderr: `conveyor: unknown workflow: ${missing} (namespace default)\n`,
      }),
    );
    const child = await cli('status', `pipeline/${flakyRepo}/main/${sha}/test`);
    expect(child.code).toBe(1);
    expect(child.stderr).toBe(
      `conveyor: pipeline/${flakyRepo}/main/${sha}/test is not a pipeline run: it answers no status query\n`,
    );
    const noConfig = await conveyor(path.join(tempDir('no-config'), 'conveyor.yml'), ['status', missing]);
    expect(noConfig.code).toBe(1);
    expect(noConfig.stderr).toMatch(
      /^conveyor: .*conveyor\.yml: invalid configuration\n {2}cannot read the file \(ENOENT\)/,
    );
  });

  it('shows what the server knows of a run no worker answers for', async () => {
    const commit = await commitSample(bare, path.join(tempDir('orphan'), 'work'), { message: 'nobody polls' });
    const decision = decidePush(config, pushPayload({ repository: flakyRepo, branch: 'main', sha: commit.sha }));
    if (decision.action !== 'start') throw new Error(decision.action);
    const { workflowId } = await startPipeline(client, decision.input, `nobody-polls-${uid()}`);
    try {
      const r = await cli('status', workflowId);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`conveyor: no orchestrator worker answered for ${workflowId}`);
      expect(r.stdout).toContain('see conveyor workers');
      expect(r.stdout).toContain(`${workflowId}  RUNNING (as the Temporal server has it`);
      expect(r.stdout).toContain('ConveyorStatus: "queued"');
      expect(r.stdout).toContain('memo author: conveyor-demo');
      const json = JSON.parse((await cli('status', workflowId, '--json')).stdout) as { server: { status: string } };
      expect(json.server.status).toBe('RUNNING');
    } finally {
      await client.workflow.getHandle(workflowId).terminate('test over');
    }
  });

  it('says which address it could not reach when no Temporal server listens there', async () => {
    const port = await freePort();
    const file = path.join(tempDir('unreachable'), 'conveyor.yml');
    const doc = parse(fs.readFileSync(config.file, 'utf8')) as { temporal: Record<string, unknown> };
    fs.writeFileSync(file, stringify({ ...doc, temporal: { ...doc.temporal, address: `127.0.0.1:${port}` } }));
    const commands = [['status', 'pipeline/a/b/main/x'], ['list'], ['workers'], ['trigger', flakyRepo, 'main']];
    // In parallel: each waits out the client's 5 s connect timeout.
    const results = await Promise.all(commands.map((args) => conveyor(file, args)));
    results.forEach((r, i) => {
      expect({ args: commands[i], code: r.code }).toEqual({ args: commands[i], code: 1 });
      expect(r.stderr).toMatch(new RegExp(`^conveyor: Temporal server unreachable at 127\\.0\\.0\\.1:${port}: `));
    });
  });
});
