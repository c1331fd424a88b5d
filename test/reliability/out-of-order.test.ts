// Fault suite, scenario 6: pushes delivered out of order. COMMITS commits are pushed one on top of
// the other (c1 ← c2 ← … ← cN), and their webhooks arrive newest first: cN's run gets its build
// number, then the deliveries of its ancestors arrive together while cN still runs (its package
// step is slow on purpose, the race a review found). Build numbers follow arrival, so every
// ancestor would get a HIGHER build number than cN, and the higher version would be older code
// (apt and dnf prefer it; cN's deploy would be a downgrade). The design: a run whose commit is an
// ancestor of a commit that already has a build on the branch ends `superseded` right after its
// build number, before it packages, so neither the staging repository and hosts nor production
// ever move back to older code.
// Sizes: CONVEYOR_OOO_COMMITS (default 3), CONVEYOR_OOO_HOSTS (staging hosts, default 1).
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { decidePush } from '../../api/github-push';
import { startPipeline } from '../../api/start-pipeline';
import { commitSample, type PushedCommit } from '../../cli/demo/sample-repo';
import { pushPayload } from '../../cli/webhook-client';
import { branchStateId, deployLockId } from '../../common/ids';
import type { PipelineResult } from '../../common/types';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { branchStateQuery, lockStateQuery, statusQuery } from '../../workflows/messages';
import { makeLocalHost, registerHosts } from '../helpers/hosts';
import { awsFor, clientFor, startWorkers, tempDir, testConfig, testEnv, uid } from '../helpers/stack';

const COMMITS = Math.max(2, Number(process.env.CONVEYOR_OOO_COMMITS ?? 3));
const HOSTS = Math.max(1, Number(process.env.CONVEYOR_OOO_HOSTS ?? 1));

/** The version dpkg on a local host records for `widget` (null: not installed). */
function installedOn(root: string): string | null {
  const status = fs.readFileSync(path.join(root, 'var/lib/dpkg/status'), 'utf8');
  const stanza = status.split(/\n\n+/).find((s) => /^Package: widget$/m.test(s));
  return stanza ? (/^Version: (.+)$/m.exec(stanza)?.[1] ?? null) : null;
}

describe('reliability: pushes delivered out of order', () => {
  const repository = `acme/ooo-${uid()}`;
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let bare: string;
  let work: string;
  let deb: string;
  const roots: string[] = [];

  beforeAll(async () => {
    const dir = tempDir('out-of-order');
    bare = path.join(dir, 'widget.git');
    work = path.join(dir, 'work');
    const hostsDir = path.join(dir, 'hosts');
    const role = `ooo-${uid()}`;
    config = testConfig(
      [
        {
          name: repository,
          cloneUrl: bare,
          steps: {
            unit: 'make test',
            package: 'if test -f SLOW; then sleep 8; fi; make package',
            smoke: 'widget --version',
          },
          more: { packages: ['widget'], staging: { tags: { Environment: 'staging', Role: role }, batchSize: 1 } },
        },
      ],
      { fleet: { hostsDir } },
    );
    [deb] = Object.keys(config.distros);
    const aws = await awsFor(config);
    const specs = [];
    for (let n = 1; n <= HOSTS; n++) {
      const name = `${deb}-${n}`;
      const root = await makeLocalHost(hostsDir, name, 'deb');
      roots.push(root);
      specs.push({ name, distro: deb, executor: 'local' as const, tags: { Environment: 'staging', Role: role }, root });
    }
    await registerHosts(aws.ec2, specs);
    client = await clientFor(config);
    workers = await startWorkers(config);
  }, 300000);

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  /** Delivers the push of `commit` as the webhook would (decidePush + startPipeline). */
  async function deliver(commit: PushedCommit): Promise<string> {
    const d = decidePush(config, pushPayload({ repository, branch: 'main', sha: commit.sha, before: commit.before }));
    if (d.action !== 'start') throw new Error(d.reason);
    return (await startPipeline(client, d.input, config.temporal.taskQueue)).workflowId;
  }

  it(`${COMMITS} commits delivered newest first: staging hosts and production keep the newest`, async () => {
    const commits: PushedCommit[] = [];
    for (let i = 1; i <= COMMITS; i++)
      commits.push(
        await commitSample(bare, work, {
          message: `c${i}`,
          // The newest commit packages slowly: its ancestors' runs overtake it if they may build.
          mutate: (d) =>
            i === COMMITS
              ? fs.writeFileSync(path.join(d, 'SLOW'), '')
              : fs.rmSync(path.join(d, 'SLOW'), { force: true }),
        }),
      );
    const newest = commits[COMMITS - 1];
    const ancestors = commits.slice(0, -1).reverse(); // delivered newest first too

    const t0 = Date.now();
    const newestId = await deliver(newest);
    for (;;) {
      const s = await client.workflow
        .getHandle(newestId)
        .query(statusQuery)
        .catch(() => undefined);
      if (s?.build !== undefined) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const ids = await Promise.all(ancestors.map(deliver));
    const late = (await Promise.all(ids.map((id) => client.workflow.getHandle(id).result()))) as PipelineResult[];
    const t1 = Date.now();
    const first = (await client.workflow.getHandle(newestId).result()) as PipelineResult;
    const t2 = Date.now();
    expect(first.status).toBe('succeeded');
    expect(first.build).toBe(1);
    const newestVersion = first.version as string;

    // Every late delivery got a higher build number than the newest commit's, yet is superseded
    // before it packages: nothing of it is built, published, deployed or promoted.
    for (const [i, r] of late.entries()) {
      const label = `${ancestors[i].message} (build ${r.build})`;
      expect({ label, status: r.status }).toEqual({ label, status: 'superseded' });
      expect(r.build).toBeGreaterThan(1);
      expect(r.stages.filter((s) => s.name !== 'test').map((s) => s.state)).toEqual(
        r.stages.filter((s) => s.name !== 'test').map(() => 'skipped'),
      );
      expect(r.published).toBeUndefined();
      expect(r.promoted).toBeUndefined();
      const status = await client.workflow.getHandle(ids[i]).query(statusQuery);
      // Named: a descendant delivered before it (the newest commit, or an ancestor delivered earlier).
      const named =
        /^commit ([0-9a-f]{12}), a descendant of this one, already has build (\d+): an older commit is not built after it$/.exec(
          status.failure ?? '',
        );
      expect(named).not.toBeNull();
      const earlier = [newest, ...ancestors.slice(0, i)].map((c) => c.sha.slice(0, 12));
      expect(earlier).toContain(named![1]);
      expect(Number(named![2])).toBeLessThan(r.build!);
    }
    expect(new Set(late.map((r) => r.build)).size).toBe(late.length);

    // Staging hosts never moved back; the deploy lock still records the newest commit.
    for (const root of roots) expect(installedOn(root)).toBe(newestVersion);
    const lock = await client.workflow.getHandle(deployLockId('staging', deb)).query(lockStateQuery);
    expect(lock.records?.[repository]).toMatchObject({ sha: newest.sha, version: newestVersion });
    expect(lock.holder).toBeUndefined();

    // Production offers the newest commit's build only: no late (higher-numbered, older) build is in it.
    const production = `${testEnv().aws}/${parseS3Url(config.storage.production).bucket}`;
    const prodPath = first.promoted!.repositories.find((r) => r.distro === deb)!.path;
    const prodPackages = await (
      await fetch(`${production}/${prodPath}/dists/bookworm-unstable/main/binary-amd64/Packages`)
    ).text();
    expect([...prodPackages.matchAll(/^Version: (.+)$/gm)].map((m) => m[1])).toEqual([newestVersion]);
    // The branch's last green build is the newest commit's.
    const branch = await client.workflow.getHandle(branchStateId(repository, 'main')).query(branchStateQuery);
    expect(branch.lastGreen).toMatchObject({ sha: newest.sha, build: 1 });

    // The staging repository lists the newest commit's build only as well.
    const staging = `${testEnv().aws}/${parseS3Url(config.storage.staging).bucket}`;
    const stagingPackages = await (
      await fetch(`${staging}/${prodPath}/dists/bookworm-unstable/main/binary-amd64/Packages`)
    ).text();
    expect([...stagingPackages.matchAll(/^Version: (.+)$/gm)].map((m) => m[1])).toEqual([newestVersion]);
    const figures = {
      commits: COMMITS,
      hosts: HOSTS,
      newest: `${newest.sha.slice(0, 12)} build 1 (${newestVersion}): ${first.status} in ${((t2 - t0) / 1000).toFixed(1)} s`,
      late: late.map((r, i) => `${ancestors[i].sha.slice(0, 12)} build ${r.build}: ${r.status}`),
      lateSeconds: ((t1 - t0) / 1000).toFixed(1),
      hostsRun: roots.map(installedOn),
      production: [...prodPackages.matchAll(/^Version: (.+)$/gm)].map((m) => m[1]),
      stagingIndex: [...stagingPackages.matchAll(/^Version: (.+)$/gm)].map((m) => m[1]),
    };
    process.stdout.write(`out-of-order figures: ${JSON.stringify(figures, null, 2)}\n`);
  });
});
