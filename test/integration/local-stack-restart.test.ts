// The local stack keeps its repositories (issue 13): `conveyor demo` publishes, `conveyor dev --stop`
// stops every process, `conveyor dev` starts the stack again on the same data dir, and then real
// apt-get and dnf still read the published repositories from the local S3 endpoint while Temporal
// still lists the run that published them. `conveyor dev --reset` forgets both at once.
// On a copy of the local stack's config with free ports and a temp data dir, never the ports or
// the data of a running `npm run dev`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { PipelineResult } from '../../common/types';
import { isAlive } from '../../cli/local-stack/services';
import type { StackInfo } from '../../cli/local-stack/stack';
import { CLI, conveyor, devStackFiles, ROOT, TSX } from '../helpers/dev-stack';
import { aptClient, dnfClient } from '../helpers/readers';
import { tempDir } from '../helpers/stack';

const ENV = { ...process.env, GITHUB_WEBHOOK_SECRET: '' };

describe('local stack: the repositories outlive a restart', () => {
  let dir: string;
  let devFile: string;
  let configFile: string;
  const stackJson = () => path.join(dir, 'data', 'stack.json');

  /** `conveyor dev [extra]` in the background, as a user's terminal runs it; resolves once it is up. */
  async function startDev(extra: string[] = []): Promise<{ info: StackInfo; out: () => string }> {
    const log = path.join(dir, `dev-${Date.now()}.log`);
    const fd = fs.openSync(log, 'a');
    const child = spawn(TSX, [CLI, '--config', configFile, 'dev', '--dev-config', devFile, ...extra], {
      cwd: ROOT,
      env: ENV,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    fs.closeSync(fd);
    child.unref();
    const out = () => fs.readFileSync(log, 'utf8');
    const deadline = Date.now() + 400000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`conveyor dev exited with ${child.exitCode}:\n${out()}`);
      if (out().includes('Conveyor local stack is up')) {
        return { info: JSON.parse(fs.readFileSync(stackJson(), 'utf8')) as StackInfo, out };
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`conveyor dev did not come up in 400 s:\n${out()}`);
  }

  async function temporalClient(info: StackInfo): Promise<Client> {
    const connection = await Connection.connect({ address: info.temporalAddress });
    return new Client({ connection, namespace: info.namespace });
  }

  beforeAll(async () => {
    ({ dir, devFile, configFile } = await devStackFiles('stack-restart', { noWorkerMetrics: true }));
  });

  afterAll(() => {
    conveyor(['dev', '--stop', '--dev-config', devFile], 180000);
  }, 200_000);

  it('publishes, stops, starts again: apt-get and dnf read the same repositories, Temporal lists the run', async () => {
    const demo = conveyor(['--config', configFile, 'demo', '--dev-config', devFile]);
    expect(demo.code).toBe(0);
    const [, runId, version] = /run succeeded: (\S+) \((\S+)\)/.exec(demo.out) ?? [];
    expect(runId).toMatch(/^pipeline\/demo\/widget\/main\//);
    const first = JSON.parse(fs.readFileSync(stackJson(), 'utf8')) as StackInfo;
    // The buckets are directories under the data dir, objects are files.
    expect(first.s3DataDir).toBe(path.join(dir, 'data', 's3'));
    expect(fs.existsSync(path.join(dir, 'data', 's3', 'conveyor-staging', 'keys', 'conveyor.asc'))).toBe(true);

    // Generous: on a loaded 2-core machine tsx alone can take tens of seconds to start.
    const s0 = Date.now();
    const stop = conveyor(['dev', '--stop', '--dev-config', devFile], 180000);
    process.stderr.write(`local stack stop: ${Date.now() - s0} ms\n`);
    expect(stop.out).toContain(`stopped the local stack (pid ${first.pid})`);
    expect(isAlive(first.pid)).toBe(false);

    const t0 = Date.now();
    const { info } = await startDev();
    const restartMs = Date.now() - t0;
    process.stderr.write(`local stack restart: ${restartMs} ms\n`);
    expect(info.pid).not.toBe(first.pid);
    expect(info.awsEndpoint).toBe(first.awsEndpoint);

    // Temporal still has the run and its result, which says where it published.
    const client = await temporalClient(info);
    let result: PipelineResult;
    try {
      const listed: string[] = [];
      for await (const w of client.workflow.list({ query: `WorkflowId = "${runId}"` })) listed.push(w.workflowId);
      expect(listed).toEqual([runId]);
      result = (await client.workflow.getHandle(runId).result()) as PipelineResult;
    } finally {
      await client.connection.close();
    }
    expect(result.version).toBe(version);

    // Real clients, over plain HTTP from the restarted endpoint, anonymously.
    const bucketUrl = `${info.awsEndpoint}/conveyor-staging`;
    const keyUrl = `${bucketUrl}/keys/conveyor.asc`;
    const debRepo = result.published!.repositories.find((r) => r.distro === 'bookworm')!;
    const apt = await aptClient(tempDir('restart-apt'), `${bucketUrl}/${debRepo.path}`, 'bookworm-unstable', keyUrl);
    const update = await apt.update();
    expect(update.output).not.toMatch(/^(W|E):/m);
    expect(update.exitCode).toBe(0);
    expect((await apt.download(`widget=${version}`)).exitCode).toBe(0);
    expect(fs.existsSync(apt.file(`widget_${version}_all.deb`))).toBe(true);

    const rpmRepo = result.published!.repositories.find((r) => r.distro === 'el9')!;
    const dnf = dnfClient(tempDir('restart-dnf'), { baseUrl: `${bucketUrl}/${rpmRepo.path}`, keyUrl });
    expect((await dnf.makecache()).exitCode).toBe(0);
    expect((await dnf.download(`widget-${version}`)).exitCode).toBe(0);
    expect(fs.existsSync(dnf.file(`widget-${version}.noarch.rpm`))).toBe(true);

    // `--reset` refuses while the stack runs, then forgets runs and objects together.
    const refused = conveyor(['--config', configFile, 'dev', '--dev-config', devFile, '--reset'], 180000);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain('stop the running local stack first');
    conveyor(['dev', '--stop', '--dev-config', devFile], 180000);
    const reset = await startDev(['--reset']);
    expect(reset.out()).toContain(`removed ${path.join(dir, 'data', 's3')}`);
    expect((await fetch(keyUrl)).status).toBe(404);
    const after = await temporalClient(reset.info);
    try {
      const listed: string[] = [];
      for await (const w of after.workflow.list({ query: `WorkflowId = "${runId}"` })) listed.push(w.workflowId);
      expect(listed).toEqual([]);
    } finally {
      await after.connection.close();
    }
  }, 1_200_000);
});
