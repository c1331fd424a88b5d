// Staging through the whole chain: real local Debian hosts (two per distro, deb and rpm) registered
// in the local EC2 endpoint are upgraded from the published staging repository, smoke-checked per
// batch and end-to-end tested; a smoke failure on the last host rolls every host back; no matching
// hosts is a clear failure; an older commit's deploy is superseded by a newer one. The e2e step
// reaches the hosts only through CONVEYOR_HOST_EXEC (the verify stage's hostExec Update): every
// command it ran is in the verify history, run by the orchestrator, and a host of no run is refused.
import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { PipelineResult, PipelineStatus } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import { abortSignal, lockStateQuery, releaseLockSignal, statusQuery } from '../../workflows/messages';
import { createControlActivities } from '../../activities/control';
import { deployLockId, stageId } from '../../common/ids';
import { parseS3Url } from '../../config/conveyor';
import { runChecked, runProcess } from '../../activities/exec/process';
import { SAMPLE_DIR } from '../../cli/demo/sample-repo';
import { conveyor } from '../helpers/cli';
import { makeLocalHost, registerHosts } from '../helpers/hosts';
import {
  awsFor,
  clientFor,
  DEB_AND_RPM,
  startSampleRun,
  startWorkers,
  tempDir,
  testConfig,
  uid,
  waitForStatus,
} from '../helpers/stack';

const SMOKE = 'widget --version && test ! -f /etc/conveyor-fail-smoke';
// The sample's e2e (its README examples on every host through CONVEYOR_HOST_EXEC), then a host that
// is not of this run: refused with the reason, exit 2.
const E2E = 'make e2e && { "$CONVEYOR_HOST_EXEC" db-of-another-run cat /etc/shadow; test $? -eq 2; }';
const EventType = temporal.api.enums.v1.EventType;

describe('staging: deploy and verify on local hosts', () => {
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let bare: string;
  let work: string;
  let hostsDir: string;
  let deb: string;
  let rpm: string;
  let s3: S3Client;
  const roots: Record<string, string> = {};
  const role = `widget-${uid()}`;

  beforeAll(async () => {
    const dir = tempDir('staging');
    bare = path.join(dir, 'widget.git');
    work = path.join(dir, 'work');
    hostsDir = path.join(dir, 'hosts');
    config = testConfig(
      [
        {
          name: 'acme/widget',
          cloneUrl: bare,
          steps: {
            unit: 'make test',
            integration: 'make integration',
            package: 'make package',
            smoke: SMOKE,
            e2e: E2E,
          },
          more: { staging: { tags: { Environment: 'staging', Role: role }, batchSize: 1 } },
        },
        {
          name: 'acme/orphan',
          cloneUrl: bare,
          // Its own channel: it builds a package named widget too, and a channel holds one widget per version.
          branches: [{ match: 'main', channel: 'orphan' }],
          steps: { unit: 'make test', package: 'make package', smoke: SMOKE },
          more: {
            staging: { tags: { Environment: 'staging', Role: `nobody-${uid()}` }, batchSize: 1 },
            // Not its default `orphan`: ownership is per channel, and `orphan` is a channel of its own.
            packages: ['widget'],
          },
        },
      ],
      { fleet: { hostsDir } },
      DEB_AND_RPM,
    );
    [deb, rpm] = Object.keys(config.distros);
    const aws = await awsFor(config);
    s3 = aws.s3;
    const specs = [];
    for (const [distro, format] of [
      [deb, 'deb'],
      [rpm, 'rpm'],
    ] as const) {
      for (const n of [1, 2]) {
        const name = `${distro}-${n}`;
        roots[name] = await makeLocalHost(hostsDir, name, format);
        specs.push({
          name,
          distro,
          executor: 'local' as const,
          tags: { Environment: 'staging', Role: role },
          root: roots[name],
        });
      }
    }
    await registerHosts(aws.ec2, specs);
    client = await clientFor(config);
    workers = await startWorkers(config);
  }, 600000);

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  const start = (repository: string, message: string, mutate?: (d: string) => void) =>
    startSampleRun(config, client, { repository, bare, work, message, mutate });

  const installed = (root: string, format: 'deb' | 'rpm') =>
    fs.readFileSync(path.join(root, 'usr/share/widget/VERSION'), 'utf8').trim() +
    (format === 'deb' ? ' (deb)' : ' (rpm)');

  it('upgrades two hosts per distro from the staging repository, then smoke and e2e pass', async () => {
    const { workflowId } = await start('acme/widget', 'first');
    const result = (await client.workflow.getHandle(workflowId).result()) as PipelineResult;
    expect(result.status).toBe('succeeded');
    expect(result.stages.filter((s) => s.name === 'deploy' || s.name === 'verify').map((s) => s.state)).toEqual([
      'succeeded',
      'succeeded',
      'succeeded',
    ]);
    const hosts = result.hosts!.flatMap((g) => g.hosts);
    expect(hosts).toHaveLength(4);
    for (const h of hosts) expect(h).toMatchObject({ before: null, after: result.version, outcome: 'upgraded' });
    expect(installed(roots[`${deb}-1`], 'deb')).toBe('1.0.0 (deb)');

    // The e2e ran the README examples on each host through host-exec, and was refused a foreign host.
    const verifyId = stageId(workflowId, 'verify');
    const artifacts = parseS3Url(config.storage.artifacts);
    const log = await (
      await s3.send(
        new GetObjectCommand({ Bucket: artifacts.bucket, Key: `${artifacts.prefix}logs/${verifyId}/e2e.log` }),
      )
    ).Body!.transformToString();
    // In the step sandbox: the client and its socket are all it has of the fleet (/run/conveyor).
    expect(log).toMatch(/^conveyor: sandbox: bubblewrap, network off/m);
    for (const h of hosts) expect(log).toContain(`== e2e on ${h.name}`);
    expect(log.match(/^e2e: all \d+ examples passed with \/usr\/bin\/widget$/gm)).toHaveLength(4);
    expect(log.match(/^e2e: ok: version 1\.0\.0$/gm)).toHaveLength(4);
    expect(log).toContain(
      'conveyor-host-exec: refused: host "db-of-another-run" is not a staging host of this run (its hosts: ' +
        `${hosts
          .map((h) => h.name)
          .sort()
          .join(', ')})`,
    );
    expect(log).toContain('conveyor: host-exec: 5 request(s) relayed');

    // Each accepted command is in the verify history, run on the orchestrator's queue; host work
    // of deploy and verify never went to a build queue, only the e2e step itself did.
    const events = async (id: string) => (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
    const verify = await events(verifyId);
    expect(verify.filter((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)).toHaveLength(
      4,
    );
    const queues = (evs: typeof verify) =>
      evs
        .filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        .map((e) => {
          const a = e.activityTaskScheduledEventAttributes!;
          return `${a.activityType!.name} ${a.taskQueue!.name}`;
        });
    const onVerify = queues(verify);
    expect(onVerify.filter((q) => q.startsWith('execOnHost '))).toEqual(
      Array(4).fill(`execOnHost ${config.temporal.taskQueue}`),
    );
    expect(onVerify.filter((q) => q.startsWith('runE2e '))).toEqual([`runE2e build-${deb}`]);
    for (const distro of [deb, rpm]) {
      const onDeploy = queues(await events(stageId(workflowId, 'deploy', distro)));
      expect(
        onDeploy.filter((q) => /^(upgradeHost|hostVersion|runOnHost|discoverHosts) /.test(q)).length,
      ).toBeGreaterThan(0);
      for (const q of onDeploy) expect(q).toMatch(new RegExp(` (${config.temporal.taskQueue})$`));
    }
  });

  it('rolls every host back to its previous version when smoke fails on the last host', async () => {
    const before = (await client.workflow
      .getHandle((await start('acme/widget', 'baseline')).workflowId)
      .result()) as PipelineResult;
    expect(before.status).toBe('succeeded');
    fs.writeFileSync(path.join(roots[`${deb}-2`], 'etc/conveyor-fail-smoke'), 'x\n');
    try {
      const { workflowId } = await start('acme/widget', 'smoke breaks on the last host');
      const status = await waitForStatus(client, workflowId, 'awaiting-operator', 180000);
      const failed = status.stages.find((s) => s.state === 'failed')!;
      expect(`${failed.name}/${failed.distro}`).toBe(`deploy/${deb}`);
      expect(failed.error).toMatch(/upgrade to 1\.0\.0-\d+ failed on deb-\w+-2; rolled back 2 host\(s\)/);
      const debHosts = status.hosts!.find((g) => g.distro === deb)!.hosts;
      expect(debHosts.map((h) => [h.name, h.after, h.outcome])).toEqual([
        [`${deb}-1`, before.version, 'rolled-back'],
        [`${deb}-2`, before.version, 'failed'],
      ]);
      expect(debHosts[1].error).toMatch(/smoke exited with 1 on/);
      // The hosts themselves say so: dpkg reports the previous version.
      for (const n of [1, 2]) {
        const v = fs.readFileSync(path.join(roots[`${deb}-${n}`], 'var/lib/dpkg/status'), 'utf8');
        expect(v).toContain(`Version: ${before.version}`);
      }
      await client.workflow.getHandle(workflowId).signal(abortSignal, { reason: 'rolled back' });
    } finally {
      fs.rmSync(path.join(roots[`${deb}-2`], 'etc/conveyor-fail-smoke'), { force: true });
    }
  });

  it('fails the deploy clearly when no running host matches the tags', async () => {
    const { workflowId } = await start('acme/orphan', 'nobody home');
    await waitForStatus(client, workflowId, 'awaiting-operator', 120000);
    // Both distros' deploys fail on their own; wait for the second as well.
    let failed: PipelineStatus['stages'] = [];
    for (let i = 0; i < 100 && failed.length < 2; i++) {
      failed = (await client.workflow.getHandle(workflowId).query(statusQuery)).stages.filter(
        (s) => s.state === 'failed',
      );
      if (failed.length < 2) await new Promise((r) => setTimeout(r, 100));
    }
    expect(failed.map((s) => s.name)).toEqual(['deploy', 'deploy']);
    expect(failed[0].error).toMatch(/^no running staging hosts match Environment=staging, Role=nobody-\w+, Distro=/);
    await client.workflow.getHandle(workflowId).signal(abortSignal, { reason: 'no hosts' });
  });

  it('supersedes the older of two pipelines queued for the same fleet; the newer one deploys', async () => {
    // Hold both fleets' deploy locks so that both pipelines queue behind them, then let go.
    const holder = `test-holder-${uid()}`;
    await client.workflow.start('branchState', {
      workflowId: holder,
      taskQueue: config.temporal.taskQueue,
      args: [{ repository: 'test/holder', branch: 'x', lastBuild: 0, assigned: [] }],
    });
    const control = createControlActivities({ client, taskQueue: config.temporal.taskQueue });
    const locks = [deb, rpm].map((d) => deployLockId('staging', d));
    for (const lockId of locks) await control.requestLock({ lockId, requester: holder, leaseSeconds: 600 });
    const lockState = (lockId: string) => client.workflow.getHandle(lockId).query(lockStateQuery);
    const until = async (what: string, ok: () => Promise<boolean>) => {
      for (let i = 0; i < 600; i++) {
        if (await ok()) return;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`timed out waiting for ${what}`);
    };
    await until('the holder to hold both locks', async () =>
      (await Promise.all(locks.map(lockState))).every((l) => l.holder?.requester === holder),
    );
    const older = await start('acme/widget', 'older');
    const newer = await start('acme/widget', 'newer');
    await until('both pipelines to queue on both locks', async () =>
      (await Promise.all(locks.map(lockState))).every((l) => l.queue.length === 2),
    );
    for (const lockId of locks) {
      const { holder: h } = await lockState(lockId);
      await client.workflow.getHandle(lockId).signal(releaseLockSignal, { requester: holder, leaseId: h!.leaseId });
    }
    const [a, b] = (await Promise.all(
      [older, newer].map((r) => client.workflow.getHandle(r.workflowId).result()),
    )) as PipelineResult[];
    expect(a.status).toBe('superseded');
    expect(a.stages.filter((s) => s.name === 'deploy').every((s) => s.state === 'skipped')).toBe(true);
    expect(b.status).toBe('succeeded');
    for (const h of b.hosts!.flatMap((g) => g.hosts)) expect(h.after).toBe(b.version);
    await client.workflow.getHandle(holder).terminate('test done');

    // An operator redeploys the older build: refused (an ancestor of the deployed commit), then forced.
    const refused = await conveyor(config.file, ['rerun', older.workflowId, `deploy/${deb}`], { timeoutMs: 120000 });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /rerun of deploy\/deb-\w+ failed: rerun of deploy\/deb-\w+ skipped: [0-9a-f]{40} is an ancestor of/,
    );
    const forced = await conveyor(config.file, ['rerun', older.workflowId, `deploy/${deb}`, '--force'], {
      timeoutMs: 180000,
    });
    expect(forced.stderr).not.toContain('conveyor:');
    expect(forced.code).toBe(0);
    const olderVersion = (await client.workflow.getHandle(`${older.workflowId}/package/${deb}`).result()) as {
      version: string;
      build: number;
    };
    for (const n of [1, 2]) {
      const dpkg = fs.readFileSync(path.join(roots[`${deb}-${n}`], 'var/lib/dpkg/status'), 'utf8');
      expect(dpkg).toContain(`Version: ${olderVersion.version}-${olderVersion.build}`);
    }
    const unknown = await conveyor(config.file, ['rerun', older.workflowId, 'deploy/a/b'], { timeoutMs: 60000 });
    expect(unknown.stderr).toContain('unknown stage "deploy/a/b"');
  });

  it('deploys after a force-push dropped the deployed commit, and says so', async () => {
    // What the hosts run came from a commit that a force-push then removed from the repository.
    const record = (await client.workflow.getHandle(deployLockId('staging', deb)).query(lockStateQuery)).records?.[
      'acme/widget'
    ];
    expect(record?.sha).toMatch(/^[0-9a-f]{40}$/);
    const rewritten = path.join(tempDir('rewrite'), 'work');
    await runChecked('git', ['init', '--quiet', '--initial-branch=main', rewritten]);
    fs.cpSync(SAMPLE_DIR, rewritten, { recursive: true });
    await runChecked('git', ['-C', rewritten, 'add', '-A']);
    await runChecked('git', [
      '-C',
      rewritten,
      '-c',
      'user.name=t',
      '-c',
      'user.email=t@t',
      'commit',
      '--quiet',
      '-m',
      'history reset',
    ]);
    await runChecked('git', ['-C', rewritten, 'remote', 'add', 'origin', bare]);
    await runChecked('git', ['-C', rewritten, 'push', '--quiet', '--force', 'origin', 'HEAD:refs/heads/main']);
    for (const ref of (await runChecked('git', ['-C', bare, 'for-each-ref', '--format=%(refname)'])).split('\n')) {
      if (ref && ref !== 'refs/heads/main') await runChecked('git', ['-C', bare, 'update-ref', '-d', ref]);
    }
    await runChecked('git', ['-C', bare, 'reflog', 'expire', '--expire=now', '--all']);
    await runChecked('git', ['-C', bare, 'gc', '--quiet', '--prune=now']);
    expect((await runProcess('git', ['-C', bare, 'cat-file', '-e', `${record!.sha}^{commit}`])).exitCode).not.toBe(0);

    // The next push deploys (the old code parked it: "cannot fetch … from …") and the run says why.
    const { workflowId } = await startSampleRun(config, client, {
      repository: 'acme/widget',
      bare,
      work: rewritten,
      message: 'after the reset',
    });
    const result = (await client.workflow.getHandle(workflowId).result()) as PipelineResult;
    expect(result.status).toBe('succeeded');
    for (const h of result.hosts!.flatMap((g) => g.hosts)) expect(h.after).toBe(result.version);
    const status = await client.workflow.getHandle(workflowId).query(statusQuery);
    expect(status.warnings?.join('\n')).toContain(
      `the deployed commit ${record!.sha} (${record!.version}) is no longer in ${bare} (history rewritten, or the repository moved)`,
    );
    expect((await conveyor(config.file, ['status', workflowId])).stdout).toContain('warning: deploy/');
  });
});
