// `conveyor repo list|show|rollback|remove` against the real local stack: two publishes make two
// generations of a channel's apt suite and yum repository; list and show read them; rollback and
// remove run as the repositoryRewrite workflow on a real orchestrator worker (under the publish
// lock) and real apt-get and dnf, reading over HTTP, see the result.
// With CONVEYOR_RECORD_HISTORIES=1 the rewrite workflows' histories are written to
// test/replay/histories/repo-rewrite (how the replay test's copies were made).
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { ConveyorConfig } from '../../config/conveyor';
import { conveyor } from '../helpers/cli';
import { publishStaging, type StagingRepo } from '../helpers/hosts';
import { aptClient, dnfClient } from '../helpers/readers';
import { awsFor, clientFor, DEB_AND_RPM, startWorkers, tempDir, testConfig, uid } from '../helpers/stack';

describe('conveyor repo: generations, rollback and removal, read by apt-get and dnf', () => {
  let config: ConveyorConfig;
  let s3: S3Client;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let repo: StagingRepo;
  let debDistro: string;
  let rpmDistro: string;
  const channel = `gen${uid()}`;

  beforeAll(async () => {
    config = testConfig([], {}, DEB_AND_RPM);
    [debDistro, rpmDistro] = Object.keys(config.distros);
    s3 = (await awsFor(config)).s3;
    const dir = tempDir('cli-repo');
    await publishStaging(config, s3, dir, 'widget', ['1.0.0-1'], channel);
    repo = await publishStaging(config, s3, dir, 'widget', ['1.0.0-2'], channel);
    workers = await startWorkers(config, { builders: false });
    client = await clientFor(config);
  }, 300_000);

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  const cli = async (...args: string[]) => {
    const r = await conveyor(config.file, args, { timeoutMs: 180_000 });
    return r;
  };
  const ok = async (...args: string[]) => {
    const r = await cli(...args);
    if (r.code !== 0) throw new Error(`conveyor ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  /** What apt-get and dnf can download of widget, each from an empty state. */
  const readable = async (versions: string[]) => {
    const apt = await aptClient(tempDir('apt'), repo.apt.url, repo.apt.suite, repo.keyUrl);
    const update = await apt.update();
    expect(update.exitCode).toBe(0);
    const dnf = dnfClient(tempDir('dnf'), { baseUrl: repo.yum.url, keyUrl: repo.keyUrl });
    expect((await dnf.makecache()).exitCode).toBe(0);
    const found: string[] = [];
    for (const v of versions) {
      if ((await apt.download(`widget=${v}`)).exitCode === 0) found.push(`apt ${v}`);
      if ((await dnf.download(`widget-${v}`)).exitCode === 0) found.push(`dnf ${v}`);
    }
    return found;
  };
  const record = async (workflowId: string) => {
    if (process.env.CONVEYOR_RECORD_HISTORIES !== '1') return;
    const dir = path.join(__dirname, '..', 'replay', 'histories', 'repo-rewrite');
    fs.mkdirSync(dir, { recursive: true });
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const bytes = proto.api.history.v1.History.encode(history).finish();
    const name = workflowId.replace(/\/[0-9a-f]{12}$/, '').replace(/[^A-Za-z0-9._-]+/g, '_');
    fs.writeFileSync(
      path.join(dir, `${name}.json`),
      JSON.stringify({ workflowId, history: Buffer.from(bytes).toString('base64') }) + '\n',
    );
  };
  const workflowOf = (stdout: string) => /\(workflow (repo-rewrite\/[^)]+)\)/.exec(stdout)?.[1];

  it('lists the generations and shows each one', async () => {
    const list = JSON.parse(await ok('repo', 'list', '--env', 'staging', '--json')) as {
      channel: string;
      distro: string;
      generation: number;
      generations: { generation: number; packages: number; live: boolean; change: { kind: string } }[];
    }[];
    const mine = list.filter((r) => r.channel === channel);
    expect(mine.map((r) => r.distro).sort()).toEqual([debDistro, rpmDistro].sort());
    for (const r of mine) {
      expect(r.generation).toBe(2);
      expect(r.generations.map((g) => [g.generation, g.packages, g.live, g.change.kind])).toEqual([
        [1, 1, false, 'publish'],
        [2, 2, true, 'publish'],
      ]);
    }
    const text = await ok('repo', 'list', '--env', 'staging');
    expect(text).toContain(`${channel} (apt bookworm-${channel}, distro ${debDistro}): live generation 2, 2 packages`);
    expect(await ok('repo', 'show', 'staging', channel, '--generation', '1', '--distro', debDistro)).toBe(
      `staging ${channel} apt bookworm-${channel} (distro ${debDistro}), generation 1:\n  widget 1.0.0-1 all\n`,
    );
    const live = await ok('repo', 'show', 'staging', channel);
    expect(live).toContain(`generation 2 (live):\n  widget 1.0.0-1 all\n  widget 1.0.0-2 all\n`);
    expect(live).toContain(
      `yum/${rpmDistro}/${channel} (distro ${rpmDistro}), generation 2 (live):\n  widget 1.0.0-1 noarch\n  widget 1.0.0-2 noarch\n`,
    );
    expect(await readable(['1.0.0-1', '1.0.0-2'])).toEqual([
      'apt 1.0.0-1',
      'dnf 1.0.0-1',
      'apt 1.0.0-2',
      'dnf 1.0.0-2',
    ]);
  }, 300_000);

  it('rolls each repository back to generation 1 as a new generation; apt-get and dnf no longer find 1.0.0-2', async () => {
    const ambiguous = await cli('repo', 'rollback', 'staging', channel, '--to', '1');
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(/has 2 repositories, each with its own generations: name one with --distro/);
    const missing = await cli('repo', 'rollback', 'staging', channel, '--to', '9', '--distro', debDistro);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no snapshot of generation 9 \(snapshots: 1, 2/);

    for (const distro of [debDistro, rpmDistro]) {
      const out = await ok('repo', 'rollback', 'staging', channel, '--to', '1', '--distro', distro);
      expect(out).toMatch(/generation 2 → 3, 1 packages/);
      expect(out).toMatch(/ {2}- widget 1\.0\.0-2 (all|noarch)/);
      await record(workflowOf(out)!);
    }
    expect(await readable(['1.0.0-1', '1.0.0-2'])).toEqual(['apt 1.0.0-1', 'dnf 1.0.0-1']);
    const list = await ok('repo', 'list', '--env', 'staging');
    expect(list).toMatch(/\*\s+3\s+\S+\s+1 packages\s+rollback to 1 by cli-tester/);
  }, 300_000);

  it('removes a version with a reason, recorded in the state; apt-get and dnf no longer find it', async () => {
    const refused = await cli('repo', 'remove', 'staging', channel, 'widget', '1.0.0-2', '--reason', 'bad');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/widget 1\.0\.0-2 is not in staging/);
    const hostile = await cli('repo', 'remove', 'staging', channel, 'widget;id', '1.0.0-1', '--reason', 'x');
    expect(hostile.code).toBe(1);
    expect(hostile.stderr).toMatch(/bad package name/);

    const out = await ok('repo', 'remove', 'staging', channel, 'widget', '1.0.0-1', '--reason', 'crashes on start');
    expect(out.match(/generation 3 → 4, 0 packages/g)).toHaveLength(2);
    await record(workflowOf(out)!);
    expect(await readable(['1.0.0-1', '1.0.0-2'])).toEqual([]);
    const show = await ok('repo', 'show', 'staging', channel, '--distro', rpmDistro);
    expect(show).toMatch(/removed: widget 1\.0\.0-1 at \S+ by cli-tester: crashes on start/);
    const state = (await (await fetch(`${repo.bucketUrl}/conveyor-state/apt/bookworm-${channel}.json`)).json()) as {
      yanked: { name: string; version: string; reason: string; by: string }[];
    };
    expect(state.yanked).toEqual([
      expect.objectContaining({ name: 'widget', version: '1.0.0-1', reason: 'crashes on start', by: 'cli-tester' }),
    ]);
    // A removed version is not published into the channel again (a rerun of an old publish stage),
    // in either format.
    for (const distro of [debDistro, rpmDistro]) {
      const one = { ...config, distros: { [distro]: config.distros[distro] } };
      await expect(publishStaging(one, s3, tempDir('again'), 'widget', ['1.0.0-1'], channel)).rejects.toThrow(
        /widget 1\.0\.0-1 was removed from .* by cli-tester \("crashes on start"\): refusing to publish it again/,
      );
    }
    expect(await readable(['1.0.0-1', '1.0.0-2'])).toEqual([]);
    // And back: the rollback restores generation 2's packages from the retained pool files.
    const back = await ok('repo', 'rollback', 'staging', channel, '--to', '2', '--distro', debDistro);
    expect(back).toMatch(/generation 4 → 5, 2 packages/);
    const restored = (await (await fetch(`${repo.bucketUrl}/conveyor-state/apt/bookworm-${channel}.json`)).json()) as {
      yanked?: unknown[];
    };
    expect(restored.yanked ?? []).toEqual([]);
    const apt = await aptClient(tempDir('apt'), repo.apt.url, repo.apt.suite, repo.keyUrl);
    expect((await apt.update()).exitCode).toBe(0);
    expect((await apt.download('widget=1.0.0-2')).exitCode).toBe(0);
  }, 300_000);
});
