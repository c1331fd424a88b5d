// Fault scenario 3: storage outage and crashes mid-publish, with real readers throughout.
// The workers reach the S3 endpoint through a proxy. After a first publish, real `apt-get update`
// (plus `apt-get download` of the candidate) and `dnf makecache` read the staging repositories in
// a loop, straight from the endpoint, while (a) the endpoint goes away for RELIABILITY_OUTAGE_S
// (default 20) right after a publish's first write, and (b) the publishing worker (the
// orchestrator) is killed with SIGKILL right after chosen writes of a publish have landed:
// RELIABILITY_PUBLISH_KILL_AT, writes counted from each (re)start, default "1,4,8"; `all` kills
// after write 1 of the first attempt, write 2 of the next, and so on until an attempt finishes. A
// kill point that falls on a YUM repomd.xml moves to the write after it (the known gap below).
// Both publishes complete, each version is in its index once, and no reader ever saw a hash
// mismatch, a missing file or a bad signature.
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { RunOutcome } from '../../activities/exec/process';
import type { PipelineResult } from '../../common/types';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { aptClient, dnfClient } from '../helpers/readers';
import { awsFor, clientFor, DEB_AND_RPM, startSampleRun, tempDir, testConfig, testEnv, uid } from '../helpers/stack';
import {
  debCounts,
  rpmCounts,
  size,
  startFaultProxy,
  startWorkerProcesses,
  type FaultProxy,
  type WorkerProcesses,
} from './harness';

const OUTAGE_S = size('RELIABILITY_OUTAGE_S', 20);
const KILL_AT = process.env.RELIABILITY_PUBLISH_KILL_AT ?? '1,4,8';

describe('reliability: storage outage and crashes mid-publish never break a reader', () => {
  let config: ConveyorConfig;
  let client: Client;
  let workers: WorkerProcesses;
  let proxy: FaultProxy;
  let dir: string;
  let stagingBucket: string;
  const repository = `acme/outage-${uid()}`;
  const reads = { apt: 0, dnf: 0, downloads: 0 };
  const breaks: string[] = [];
  let reading = true;
  let readers: Promise<void> | undefined;

  beforeAll(async () => {
    dir = tempDir('outage');
    proxy = await startFaultProxy(testEnv().aws);
    config = testConfig(
      [
        {
          name: repository,
          cloneUrl: path.join(dir, 'widget.git'),
          steps: { unit: 'make test', package: 'make package' },
          more: { packages: ['widget'] },
        },
      ],
      { aws: { region: 'us-east-1', endpoint: proxy.url } },
      DEB_AND_RPM,
    );
    stagingBucket = parseS3Url(config.storage.staging).bucket;
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkerProcesses(config, {}, dir);
  }, 180000);

  afterAll(async () => {
    reading = false;
    await readers;
    await workers?.stop();
    await client?.connection.close();
    await proxy?.close();
  });

  const run = async (message: string): Promise<PipelineResult> => {
    const { workflowId } = await startSampleRun(config, client, {
      repository,
      bare: path.join(dir, 'widget.git'),
      work: path.join(dir, 'work'),
      message,
    });
    return (await client.workflow.getHandle(workflowId).result()) as PipelineResult;
  };

  /** Any sign of a broken repository in a reader's answer. */
  const check = (who: string, r: RunOutcome) => {
    const bad = r.exitCode !== 0 || /^(W|E|Err):/m.test(r.output);
    if (bad) breaks.push(`${who} (exit ${r.exitCode}) at ${new Date().toISOString()}:\n${r.output.slice(-1500)}`);
  };

  it('publishes a first version, then real readers start reading it in a loop', async () => {
    const first = await run('first');
    expect(first.status).toBe('succeeded');
    const base = `${testEnv().aws}/${stagingBucket}`;
    const deb = first.published!.repositories.find((r) => r.suite)!;
    const rpm = first.published!.repositories.find((r) => !r.suite)!;
    const apt = await aptClient(tempDir('outage-apt'), `${base}/${deb.path}`, deb.suite!, `${base}/keys/conveyor.asc`);
    const dnf = dnfClient(tempDir('outage-dnf'), {
      baseUrl: `${base}/${rpm.path}`,
      keyUrl: `${base}/keys/conveyor.asc`,
    });
    const dl = apt.file('');
    readers = (async () => {
      while (reading) {
        const update = await apt.update();
        reads.apt++;
        check('apt-get update', update);
        if (update.exitCode === 0) {
          const got = await apt.download('widget');
          reads.downloads++;
          check('apt-get download widget', got);
          for (const f of fs.readdirSync(dl)) if (f.endsWith('.deb')) fs.rmSync(path.join(dl, f));
        }
        check('dnf makecache', await dnf.makecache());
        reads.dnf++;
      }
    })();
    await new Promise((r) => setTimeout(r, 3000));
    expect(reads.apt).toBeGreaterThan(0);
    expect(breaks).toEqual([]);
  }, 300000);

  it(`completes a publish across a storage outage of ${OUTAGE_S} s that starts after its first write`, async () => {
    let outage: Promise<void> | undefined;
    let outageAt = 0;
    proxy.afterWrite = (w) => {
      if (outage || !w.path.startsWith(`/${stagingBucket}/`)) return;
      outageAt = Date.now();
      outage = proxy.down(OUTAGE_S * 1000);
    };
    const t0 = Date.now();
    const result = await run('across an outage');
    proxy.afterWrite = undefined;
    expect(outage).toBeDefined();
    await outage;
    console.log(
      `storage outage: endpoint down ${OUTAGE_S} s from ${((outageAt - t0) / 1000).toFixed(1)} s into the run; ` +
        `run ${result.status} after ${((Date.now() - t0) / 1000).toFixed(1)} s; readers so far: ${reads.apt} apt updates, ` +
        `${reads.downloads} downloads, ${reads.dnf} dnf makecaches, ${breaks.length} broken reads`,
    );
    expect(result.status).toBe('succeeded');
    await expectOnce(result);
    expect(breaks).toEqual([]);
  }, 600000);

  it(`completes a publish whose worker is killed between writes (${KILL_AT})`, async () => {
    const all = KILL_AT === 'all';
    const points = all ? [] : KILL_AT.split(',').map(Number);
    let next = all ? 1 : points.shift();
    let since = 0;
    const kills: string[] = [];
    const lives = { n: 0 };
    proxy.afterWrite = async (w) => {
      if (!w.path.startsWith(`/${stagingBucket}/`) || next === undefined) return;
      since++;
      if (since !== next) return;
      const object = w.path.split('?')[0];
      if (object.endsWith('/repodata/repomd.xml')) {
        // Between repomd.xml and its .asc is the known gap of YUM's two-object switch (README,
        // Repositories): dnf checks only the first signature in the .asc, so no .asc can cover
        // both generations. That tear is tested on its own (repository-yum.test.ts); here the
        // kill moves to the next write.
        next++;
        return;
      }
      kills.push(`after write ${since} (${w.method} ${object.split('/').slice(-2).join('/')})`);
      workers.kill('orchestrator');
      lives.n++;
      since = 0;
      next = all ? next + 1 : points.shift();
      // Writes count again from the restart on.
      await workers.orchestrator.restarted(lives.n);
    };
    const t0 = Date.now();
    const result = await run('across crashes');
    proxy.afterWrite = undefined;
    console.log(
      `crash mid-publish: orchestrator killed ${kills.length} times: ${kills.join('; ')}; run ${result.status} after ` +
        `${((Date.now() - t0) / 1000).toFixed(1)} s; readers in all: ${reads.apt} apt updates, ${reads.downloads} ` +
        `downloads, ${reads.dnf} dnf makecaches, ${breaks.length} broken reads`,
    );
    expect(kills.length).toBeGreaterThan(0);
    expect(result.status).toBe('succeeded');
    await expectOnce(result);
    reading = false;
    await readers;
    expect(reads.apt).toBeGreaterThan(3);
    expect(reads.dnf).toBeGreaterThan(3);
    expect(breaks).toEqual([]);
  }, 900000);

  async function expectOnce(result: PipelineResult) {
    const base = `${testEnv().aws}/${stagingBucket}`;
    for (const repo of result.published!.repositories) {
      const counts = repo.suite
        ? await debCounts(`${base}/${repo.path}/dists/${repo.suite}/main/binary-amd64/Packages`)
        : await rpmCounts(`${base}/${repo.path}`);
      expect([repo.distro, counts.get(result.version!)]).toEqual([repo.distro, 1]);
      expect([...counts.values()].every((c) => c === 1)).toBe(true);
    }
  }
});
