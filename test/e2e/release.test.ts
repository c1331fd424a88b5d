// Release and promotion: a push to a release branch (`v*.*`) is tested, packaged, published to
// staging, tagged `v<version>` with the next patch branch cut, waits for approval (given through
// the real `temporal` CLI), and is promoted to production `stable`, where real apt-get and dnf find
// the exact version. Rejection promotes nothing; re-running the release for an existing tag changes
// nothing, and a tag at another commit is refused. Production then serves the very files staging
// served and the package stages recorded (debs, rpms signed once at package time, docs).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import { runChecked } from '../../activities/exec/process';
import { createReleaseActivities } from '../../activities/git/release';
import { commitSample } from '../../cli/demo/sample-repo';
import { branchStateId } from '../../common/ids';
import type { PipelineResult } from '../../common/types';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { branchStateQuery, rejectSignal } from '../../workflows/messages';
import { conveyor } from '../helpers/cli';
import type { AwsClients } from '../../activities/storage/s3';
import { aptClient, dnfClient } from '../helpers/readers';
import { sameBytesReport } from '../helpers/same-bytes';
import {
  awsFor,
  clientFor,
  DEB_AND_RPM,
  startSampleRun,
  startWorkers,
  tempDir,
  testConfig,
  testEnv,
  waitForStatus,
} from '../helpers/stack';

const TEMPORAL = path.resolve(__dirname, '..', '..', '.tools', 'bin', 'temporal');

describe('release branches: tag, cut, approve, promote', () => {
  let config: ConveyorConfig;
  let aws: AwsClients;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let bare: string;
  let work: string;
  let deb: string;
  let rpm: string;

  beforeAll(async () => {
    const dir = tempDir('release');
    bare = path.join(dir, 'widget.git');
    work = path.join(dir, 'work');
    config = testConfig(
      [
        {
          name: 'acme/rel',
          cloneUrl: bare,
          steps: { unit: 'make test', integration: 'make integration', package: 'make package', docs: 'make docs' },
          // The sample project builds `widget`, not the default `rel`.
          more: { packages: ['widget'] },
          branches: [
            { match: 'main', channel: 'unstable' },
            { match: 'v*.*', channel: 'stable', release: true, approval: true },
          ],
        },
      ],
      {},
      DEB_AND_RPM,
    );
    [deb, rpm] = Object.keys(config.distros);
    aws = await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
  });
  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  const start = (branch: string, message: string, mutate?: (d: string) => void) =>
    startSampleRun(config, client, { repository: 'acme/rel', bare, work, branch, message, mutate });
  const remoteRefs = async () => (await runChecked('git', ['ls-remote', bare])).trim();

  it('tags, cuts the next patch branch, waits for approval, and promotes to production stable', async () => {
    const { sha, workflowId } = await start('v1.0', 'release candidate');
    const waiting = await waitForStatus(client, workflowId, 'awaiting-approval', 180000);
    expect(waiting.release).toEqual({ tag: 'v1.0.0', nextBranch: 'v1.0.1' });
    const refs = await remoteRefs();
    expect(refs).toContain(`${sha}\trefs/tags/v1.0.0^{}`);
    expect(refs).toMatch(/\trefs\/heads\/v1\.0\.1$/m);
    expect((await runChecked('git', ['-C', bare, 'show', 'v1.0.1:VERSION'])).trim()).toBe('1.0.1');
    const entity = await client.workflow.getHandle(branchStateId('acme/rel', 'v1.0')).query(branchStateQuery);
    expect(entity).toMatchObject({ stableBranch: 'v1.0', releasedVersion: '1.0.0' });

    // Approved through the plain Temporal CLI, as an operator would.
    await promisify(execFile)(TEMPORAL, [
      'workflow',
      'signal',
      '--address',
      config.temporal.address,
      '--workflow-id',
      workflowId,
      '--name',
      'approve',
      '--input',
      JSON.stringify({ by: 'release-manager', comment: 'ship it' }),
    ]);
    const result = (await client.workflow.getHandle(workflowId).result()) as PipelineResult & {
      approval?: { by?: string };
    };
    expect(result.status).toBe('succeeded');
    expect(result.promoted).toMatchObject({ environment: 'production', channel: 'stable' });
    // The branch-state entity records the promoted build as the branch's last green one.
    const green = await client.workflow.getHandle(branchStateId('acme/rel', 'v1.0')).query(branchStateQuery);
    expect(green.lastGreen).toMatchObject({ build: result.build, sha, version: result.version });
    const status = await client.workflow.getHandle(workflowId).query('status');
    expect(status).toMatchObject({ approval: { decision: 'approved', by: 'release-manager', comment: 'ship it' } });

    const prod = `${testEnv().aws}/${parseS3Url(config.storage.production).bucket}`;
    const debPath = result.promoted!.repositories.find((r) => r.distro === deb)!.path;
    const apt = await aptClient(
      tempDir('prod-apt'),
      `${prod}/${debPath}`,
      'bookworm-stable',
      `${prod}/keys/conveyor.asc`,
    );
    expect((await apt.update()).exitCode).toBe(0);
    expect((await apt.download(`widget=${result.version}`)).exitCode).toBe(0);
    expect(fs.existsSync(apt.file(`widget_${result.version}_all.deb`))).toBe(true);
    const rpmPath = result.promoted!.repositories.find((r) => r.distro === rpm)!.path;
    const dnf = dnfClient(tempDir('prod-dnf'), { baseUrl: `${prod}/${rpmPath}`, keyUrl: `${prod}/keys/conveyor.asc` });
    expect((await dnf.makecache()).exitCode).toBe(0);
    expect((await dnf.install(`widget-${result.version}`)).exitCode).toBe(0);
    expect((await dnf.installed('widget')).output.trim()).toBe(`widget-${result.version}.noarch`);

    // What was approved is what production serves: every deb, rpm and docs file hashes in
    // production as in staging and as the package stages recorded it.
    const same = await sameBytesReport(client, aws, config, workflowId, result);
    expect(same.differing).toEqual([]);
    const files = (where: string) =>
      same.compared.filter((c) => c.startsWith(`${where} `)).map((c) => c.split(' ').slice(1).join(' '));
    expect(
      files('production')
        .map((f) => f.split(' ')[0])
        .sort(),
    ).toEqual([
      'docs/examples.html',
      'docs/index.html',
      `widget-${result.version}.noarch.rpm`,
      `widget_${result.version}_all.deb`,
    ]);
    expect(files('production')).toEqual(files('staging'));

    // The release again for the same sha is a no-op; for another sha with the same VERSION, refused.
    const release = createReleaseActivities({ token: () => undefined, workspaceRoot: tempDir('rel') });
    const again = await release.releaseCommit({ cloneUrl: bare, sha, branch: 'v1.0' });
    expect(again).toMatchObject({ tag: 'v1.0.0', tagCreated: false, nextBranchCreated: false });
    const before = await remoteRefs();
    const other = await commitSample(bare, work, { branch: 'v1.0', message: 'after the release' });
    const refused = await release
      .releaseCommit({ cloneUrl: bare, sha: other.sha, branch: 'v1.0' })
      .catch((e: unknown) => e);
    expect((refused as { type?: string }).type).toBe('ReleaseConflict');
    expect((refused as Error).message).toMatch(/tag v1\.0\.0 already exists at [0-9a-f]{40}, not at the tested/);
    expect((await remoteRefs()).replace(/^.*refs\/heads\/v1\.0$/m, '')).toBe(
      before.replace(/^.*refs\/heads\/v1\.0$/m, ''),
    );
  });

  it('a rejected release promotes nothing', async () => {
    const { workflowId } = await start('v2.0', 'two point oh', (d) =>
      fs.writeFileSync(path.join(d, 'VERSION'), '2.0.0\n'),
    );
    await waitForStatus(client, workflowId, 'awaiting-approval', 180000);
    await client.workflow.getHandle(workflowId).signal(rejectSignal, { by: 'qa', reason: 'not yet' });
    const result = (await client.workflow.getHandle(workflowId).result()) as PipelineResult;
    expect(result.status).toBe('rejected');
    expect(result.promoted).toBeUndefined();
    expect(result.stages.find((s) => s.name === 'promote')?.state).toBe('skipped');
    const packages = await fetch(
      `${testEnv().aws}/${parseS3Url(config.storage.production).bucket}/apt/dists/bookworm-stable/main/binary-amd64/Packages`,
    );
    expect(await packages.text()).not.toContain('Version: 2.0.0');
  });

  it('refuses to promote an older build over a newer one unless forced through conveyor', async () => {
    const runs = [];
    for (const message of ['older main build', 'newer main build']) {
      const { workflowId } = await start('main', message);
      runs.push({ workflowId, result: (await client.workflow.getHandle(workflowId).result()) as PipelineResult });
    }
    const [older, newer] = runs;
    expect(newer.result.promoted).toMatchObject({ environment: 'production', channel: 'unstable' });

    const refused = await conveyor(config.file, ['promote', older.workflowId], { timeoutMs: 60000 });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `production unstable already holds widget ${newer.result.version} (${deb}), newer than ${older.result.version}: not promoting (force to override)`,
    );
    const forced = await conveyor(config.file, ['promote', older.workflowId, '--force'], { timeoutMs: 60000 });
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain(`promoted acme/rel ${older.result.version} to production unstable`);
    // Promoting the newest build again is idempotent: no refusal, nothing new.
    const same = await conveyor(config.file, ['promote', newer.workflowId], { timeoutMs: 60000 });
    expect(same.code).toBe(0);
  });
});
