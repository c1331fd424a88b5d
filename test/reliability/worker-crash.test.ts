// Fault scenarios 1 and 8: worker crashes, then secrets.
// Several release pipelines run at once (pushes through the real webhook API, each to its own
// release branch, through test → package (deb, rpm) → publish → release → promote), while the
// orchestrator and builder worker processes are killed with SIGKILL at seeded random moments and
// started again by the local stack's supervisor. Then: every run succeeded; each package version is
// in the staging and production indexes exactly once; each tag and next branch exists once, at the
// run's commit; no stage child was started twice and the release activity was scheduled once per
// run; and no workflow history on the server, stored object or worker log holds the webhook
// secret, the GitHub token or the signing key.
// Sizes: RELIABILITY_PIPELINES (default 3), RELIABILITY_KILLS (default 4), RELIABILITY_SEED.
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { createApiServer, listen } from '../../api/server';
import { runChecked } from '../../activities/exec/process';
import { commitSample } from '../../cli/demo/sample-repo';
import { pushPayload, sendWebhook } from '../../cli/webhook-client';
import type { PipelineResult } from '../../common/types';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { startFakeGithub, type FakeGithub } from '../helpers/fake-github';
import { awsFor, clientFor, DEB_AND_RPM, tempDir, testConfig, testEnv, uid } from '../helpers/stack';
import {
  activitySchedules,
  childStarts,
  pendingWork,
  debCounts,
  privateKeyNeedles,
  retriedActivities,
  rpmCounts,
  prng,
  runTree,
  scanForSecrets,
  size,
  startWorkerProcesses,
  type WorkerProcesses,
} from './harness';

const PIPELINES = size('RELIABILITY_PIPELINES', 3);
const KILLS = size('RELIABILITY_KILLS', 4);
const SEED = size('RELIABILITY_SEED', 20261201);
const WEBHOOK_SECRET = `whsec-${uid()}${uid()}`;
const TOKEN = `ghp_${uid()}${uid()}${uid()}`;

describe('reliability: worker crashes lose nothing and do nothing twice; no secret anywhere', () => {
  let config: ConveyorConfig;
  let client: Client;
  let workers: WorkerProcesses;
  let server: http.Server;
  let github: FakeGithub;
  let apiUrl: string;
  let dir: string;
  let bare: string;
  const repository = `acme/crash-${uid()}`;

  beforeAll(async () => {
    dir = tempDir('crash');
    bare = path.join(dir, 'widget.git');
    github = await startFakeGithub({ expectedToken: TOKEN });
    const tokenEnv = `CONVEYOR_CRASH_TOKEN_${uid().toUpperCase()}`;
    config = testConfig(
      [
        {
          name: repository,
          cloneUrl: bare,
          steps: { unit: 'make test', package: 'make package' },
          branches: [{ match: 'v*.*', channel: 'stable', release: true }],
          more: { packages: ['widget'] },
        },
      ],
      { github: { tokenEnv, apiUrl: github.url } },
      DEB_AND_RPM,
    );
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkerProcesses(config, { [tokenEnv]: TOKEN }, dir);
    server = createApiServer({ config, client, logger: pino({ level: 'silent' }), secret: WEBHOOK_SECRET });
    apiUrl = `http://127.0.0.1:${await listen(server, 0)}`;
  }, 180000);

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    await workers?.stop();
    await github?.close();
    await client?.connection.close();
  });

  it(`completes ${PIPELINES} release runs while workers are killed ${KILLS} times`, async () => {
    const t0 = Date.now();
    const runs: { branch: string; sha: string; id: string }[] = [];
    for (let n = 1; n <= PIPELINES; n++) {
      const branch = `v${n}.0`;
      const commit = await commitSample(bare, path.join(dir, 'work'), {
        branch,
        message: `release ${n}`,
        mutate: (d) => fs.writeFileSync(path.join(d, 'VERSION'), `${n}.0.0\n`),
      });
      const payload = pushPayload({ repository, branch, sha: commit.sha, before: commit.before });
      const res = await sendWebhook(apiUrl, WEBHOOK_SECRET, 'push', payload);
      expect(res.status).toBe(202);
      runs.push({ branch, sha: commit.sha, id: res.body.workflowId as string });
    }

    // SIGKILL at seeded moments over the first 40 s, alternating at random between the roles.
    const random = prng(SEED);
    const moments = Array.from({ length: KILLS }, () => Math.floor(random() * 40000)).sort((a, b) => a - b);
    const killed: string[] = [];
    const results = Promise.all(runs.map((r) => client.workflow.getHandle(r.id).result() as Promise<PipelineResult>));
    let done = false;
    void results.finally(() => (done = true));
    let restartsWanted = { orchestrator: 0, builder: 0 };
    for (const at of moments) {
      await new Promise((r) => setTimeout(r, Math.max(0, at - (Date.now() - t0))));
      if (done) break;
      const role = random() < 0.5 ? 'orchestrator' : 'builder';
      // One kill per life: wait until the supervisor has started the role again before the next.
      await workers[role].restarted(restartsWanted[role]);
      workers.kill(role);
      restartsWanted = { ...restartsWanted, [role]: restartsWanted[role] + 1 };
      killed.push(`${role}@${((Date.now() - t0) / 1000).toFixed(1)}s`);
    }
    // Given up well before the test's own timeout, saying where each unfinished run stands.
    const finished = await Promise.race([
      results,
      new Promise<never>((_, reject) =>
        setTimeout(
          () =>
            void Promise.all(runs.map((r) => pendingWork(client, r.id))).then(
              (open) =>
                reject(
                  new Error(
                    `runs not done in 480 s; kills ${killed.join(' ')}\n${open.flat().join('\n')}\n${workers.lines.join('\n')}`,
                  ),
                ),
              reject,
            ),
          480_000 - (Date.now() - t0),
        ).unref(),
      ),
    ]);
    const wall = Date.now() - t0;
    console.log(
      `worker crash: ${PIPELINES} runs, seed ${SEED}, kills ${killed.join(' ') || 'none (runs ended first)'}; ` +
        `restarts orchestrator ${workers.orchestrator.restarts}, builder ${workers.builder.restarts}; ` +
        `all done in ${(wall / 1000).toFixed(1)} s\n${workers.lines.join('\n')}`,
    );
    const retried = (await Promise.all(runs.map((r) => retriedActivities(client, r.id)))).flat();
    console.log(`activities retried after the kills:\n  ${retried.join('\n  ') || 'none'}`);
    expect(killed.length).toBeGreaterThan(0);
    const secs = (a?: string, b?: string) => (a && b ? ((Date.parse(b) - Date.parse(a)) / 1000).toFixed(1) : '?');
    for (const [i, r] of finished.entries()) {
      const stages = r.stages.map(
        (s) =>
          `${s.name}${s.distro ? `/${s.distro.split('-')[0]}` : ''} ${secs(s.startedAt, s.endedAt)} s` +
          ` (from ${s.startedAt ? ((Date.parse(s.startedAt) - t0) / 1000).toFixed(1) : '?'} s)`,
      );
      console.log(`${runs[i].branch} ${r.version} ${r.status}: ${stages.join(', ')}`);
    }
    // All promote to the one stable channel: a run whose newer sibling reached production first is
    // superseded there (production never moves back), having done everything before.
    expect(finished.map((r) => r.status).filter((s) => s !== 'succeeded' && s !== 'superseded')).toEqual([]);
    expect(finished.some((r) => r.status === 'succeeded')).toBe(true);
    for (const r of finished)
      expect(r.stages.filter((s) => s.state !== 'succeeded' && s.name !== 'promote')).toEqual([]);
    const newestVersion = finished
      .map((r) => r.version!)
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
      .at(-1);
    expect(finished.find((r) => r.version === newestVersion)!.status).toBe('succeeded');

    // Each package version once in each index: every run's in staging, the promoted ones' in production.
    const versions = finished.map((r) => r.version!);
    expect(new Set(versions).size).toBe(PIPELINES);
    const promoted = finished.filter((r) => r.status === 'succeeded').map((r) => r.version!);
    for (const env of ['staging', 'production'] as const) {
      const bucket = `${testEnv().aws}/${parseS3Url(config.storage[env]).bucket}`;
      const newestRun = finished.find((r) => r.version === newestVersion)!;
      const where = env === 'staging' ? newestRun.published! : newestRun.promoted!;
      for (const repo of where.repositories) {
        const counts =
          repo.suite !== undefined
            ? await debCounts(`${bucket}/${repo.path}/dists/${repo.suite}/main/binary-amd64/Packages`)
            : await rpmCounts(`${bucket}/${repo.path}`);
        for (const v of env === 'staging' ? versions : promoted)
          expect([env, repo.distro, v, counts.get(v)]).toEqual([env, repo.distro, v, 1]);
        expect([...counts.values()].every((c) => c === 1)).toBe(true);
      }
    }

    // Tags and next branches: one each, at the run's commit.
    const refs = (await runChecked('git', ['ls-remote', bare])).trim().split('\n');
    for (const [i, run] of runs.entries()) {
      const v = `${i + 1}.0.0`;
      expect(refs.filter((l) => l.endsWith(`\trefs/tags/v${v}^{}`))).toEqual([`${run.sha}\trefs/tags/v${v}^{}`]);
      expect(refs.filter((l) => l.endsWith(`\trefs/heads/v${i + 1}.0.1`))).toHaveLength(1);
    }

    // No stage started twice; the release scheduled once per run.
    for (const run of runs) {
      const starts = await childStarts(client, run.id);
      expect([...starts.entries()].filter(([, n]) => n !== 1)).toEqual([]);
      const tree = await runTree(client, run.id);
      const release = tree.find((id) => id.endsWith('/release'));
      expect(release).toBeDefined();
      expect((await activitySchedules(client, release!)).get('releaseCommit')).toBe(1);
    }
  }, 600000);

  it('an orchestrator killed in the middle of the release push: the release is retried within a minute, not 10', async () => {
    // The remote holds the push of this run's tag for 20 s (a slow server), long enough to kill the
    // worker running releaseCommit in the middle of it. Its next attempt must come from the stage's
    // heartbeat timeout (30 s), not from the activity's 10-minute start-to-close.
    const tag = 'refs/tags/v9.0.0';
    const hook = path.join(bare, 'hooks', 'pre-receive');
    fs.writeFileSync(hook, `#!/bin/sh\nwhile read old new ref; do [ "$ref" = ${tag} ] && sleep 20; done\nexit 0\n`, {
      mode: 0o755,
    });
    try {
      const commit = await commitSample(bare, path.join(dir, 'work'), {
        branch: 'v9.0',
        message: 'release 9',
        mutate: (d) => fs.writeFileSync(path.join(d, 'VERSION'), '9.0.0\n'),
      });
      const res = await sendWebhook(
        apiUrl,
        WEBHOOK_SECRET,
        'push',
        pushPayload({ repository, branch: 'v9.0', sha: commit.sha, before: commit.before }),
      );
      expect(res.status).toBe(202);
      const id = res.body.workflowId as string;
      // Until releaseCommit has started on a worker (the tag push follows its fetch within seconds).
      const deadline = Date.now() + 240_000;
      let running: string | undefined;
      while (!running) {
        if (Date.now() > deadline)
          throw new Error(`releaseCommit never started:\n${(await pendingWork(client, id)).join('\n')}`);
        const d = await client.workflow
          .getHandle(`${id}/release`)
          .describe()
          .catch(() => undefined);
        running =
          d?.raw.pendingActivities?.find((a) => a.activityType?.name === 'releaseCommit' && a.lastStartedTime)
            ?.lastWorkerIdentity ?? undefined;
        if (!running) await new Promise((r) => setTimeout(r, 200));
      }
      await new Promise((r) => setTimeout(r, 3000)); // into the held push
      const restarts = workers.orchestrator.restarts;
      const killedAt = Date.now();
      workers.kill('orchestrator');
      const result = (await client.workflow.getHandle(id).result()) as PipelineResult;
      const after = (Date.now() - killedAt) / 1000;
      console.log(
        `release crash: orchestrator ${running} killed during the tag push; run ${result.status} ${after.toFixed(1)} s later`,
      );
      expect(result.status).toBe('succeeded');
      expect(after).toBeLessThan(180);
      // The release's last attempt was the second: the first died with the worker.
      const events = (await client.workflow.getHandle(`${id}/release`).fetchHistory()).events ?? [];
      const typeOf = new Map(
        events
          .filter((e) => e.activityTaskScheduledEventAttributes)
          .map((e) => [String(e.eventId), e.activityTaskScheduledEventAttributes?.activityType?.name]),
      );
      const started = events
        .filter(
          (e) => typeOf.get(String(e.activityTaskStartedEventAttributes?.scheduledEventId ?? '')) === 'releaseCommit',
        )
        .map((e) => e.activityTaskStartedEventAttributes?.attempt);
      expect(started).toEqual([2]);
      const refs = await runChecked('git', ['ls-remote', bare, `${tag}^{}`, 'refs/heads/v9.0.1']);
      expect(refs).toContain(`${commit.sha}\t${tag}^{}`);
      expect(refs).toContain('refs/heads/v9.0.1');
      await workers.orchestrator.restarted(restarts + 1);
    } finally {
      fs.rmSync(hook, { force: true });
    }
  }, 420_000);

  it('leaves no webhook secret, GitHub token or signing key in any history, stored object or worker log', async () => {
    // The token was used: every commit status carried it.
    expect(github.requests.length).toBeGreaterThan(0);
    expect(github.requests.every((r) => r.tokenMatches)).toBe(true);
    const aws = await awsFor(config);
    const t0 = Date.now();
    const scan = await scanForSecrets(
      client,
      aws.s3,
      { 'webhook secret': WEBHOOK_SECRET, 'GitHub token': TOKEN, ...privateKeyNeedles(testEnv().signingKey) },
      {
        buckets: [config.storage.artifacts, config.storage.staging, config.storage.production].map(
          (u) => parseS3Url(u).bucket,
        ),
        files: workers.logFiles,
      },
    );
    console.log(
      `secrets: scanned ${scan.histories} workflow histories, ${scan.objects} stored objects, ` +
        `${scan.files} worker logs in ${Date.now() - t0} ms: ${scan.hits.length} hits`,
    );
    expect(scan.histories).toBeGreaterThan(PIPELINES * 5);
    expect(scan.objects).toBeGreaterThan(0);
    expect(scan.hits).toEqual([]);
  }, 300000);
});
