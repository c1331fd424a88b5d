// `conveyor demo` and `conveyor dev` as a user runs them, on a copy of the local stack's config
// with free ports and a temp data dir (never the ports or the data of a running `npm run dev`).
// One stack, one demo (each demo costs a stack start and a whole chain, so this file shows both
// halves on the same one):
//   1. the demo runs end to end and leaves the stack up; a failing demo names its stage; a second
//      `conveyor dev` is refused; `conveyor dev --stop` stops every process and frees every port;
//   2. the stack keeps its repositories (issue 13): `conveyor dev` starts again on the same data
//      dir, real apt-get and dnf still read what the demo published from the local S3 endpoint,
//      Temporal still lists the run, and `conveyor dev --reset` forgets both at once.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { PipelineResult } from '../../common/types';
import { isAlive, isPortFree } from '../../cli/local-stack/services';
import type { StackInfo } from '../../cli/local-stack/stack';
import { CLI, conveyor, devStackFiles, ROOT, TSX } from '../helpers/dev-stack';
import { aptClient, dnfClient } from '../helpers/readers';
import { tempDir } from '../helpers/stack';

const ENV = { ...process.env, GITHUB_WEBHOOK_SECRET: '' };

describe('local stack: conveyor demo, dev, dev --stop, dev --reset', () => {
  let dir: string;
  let devFile: string;
  let configFile: string;
  let ports: number[];
  const stackJson = () => path.join(dir, 'data', 'stack.json');
  // What the first test's demo published, for the second.
  let runId = '';
  let version = '';
  let first: StackInfo | undefined;

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
    ({ dir, ports, devFile, configFile } = await devStackFiles('stack'));
  });

  afterAll(() => {
    conveyor(['dev', '--stop', '--dev-config', devFile], 180000);
  }, 200_000);

  it('runs the demo end to end, leaves the stack up, refuses a second dev, and stops cleanly', async () => {
    const demo = conveyor(['--config', configFile, 'demo', '--dev-config', devFile]);
    expect(demo.out).toContain('run succeeded: pipeline/demo/widget/main/');
    expect(demo.out).toMatch(
      new RegExp(
        `Web UI: http://127\\.0\\.0\\.1:${ports[1]}/namespaces/default/workflows/pipeline%2Fdemo%2Fwidget%2F[^ ]+%2F[0-9a-f]{40}`,
      ),
    );
    expect(demo.code).toBe(0);
    [, runId, version] = /run succeeded: (\S+) \((\S+)\)/.exec(demo.out) ?? [];
    expect(runId).toMatch(/^pipeline\/demo\/widget\/main\//);

    const info = JSON.parse(fs.readFileSync(stackJson(), 'utf8')) as StackInfo;
    first = info;
    expect(isAlive(info.pid)).toBe(true);
    const ui = await fetch(info.uiUrl);
    expect(ui.status).toBe(200);
    expect((await fetch(`${info.apiUrl}/healthz`)).status).toBe(200);
    // /runs and /metrics: on the status listener, not on the webhook listener.
    expect(info.statusUrl).toBe(`http://127.0.0.1:${ports[6]}`);
    expect((await fetch(`${info.statusUrl}/metrics`)).status).toBe(200);
    expect((await fetch(`${info.apiUrl}/metrics`)).status).toBe(404);
    // Temporal state lives in the SQLite file under the data dir; the buckets are directories
    // under it too, objects are files.
    expect(fs.existsSync(path.join(dir, 'data', 'temporal.db'))).toBe(true);
    expect(info.s3DataDir).toBe(path.join(dir, 'data', 's3'));
    expect(fs.existsSync(path.join(dir, 'data', 's3', 'conveyor-staging', 'keys', 'conveyor.asc'))).toBe(true);

    // A failing demo exits non-zero with the failing stage and its log tail.
    const failing = conveyor(['--config', configFile, 'demo', '--dev-config', devFile, '--fail']);
    expect(failing.code).toBe(1);
    expect(failing.out).toContain('failing stage: test: unit exited with code 2');
    expect(failing.out).toContain('unit: failing on purpose');

    const second = conveyor(['--config', configFile, 'dev', '--dev-config', devFile], 60000);
    expect(second.code).toBe(1);
    expect(second.out).toContain(`the local stack is already running (pid ${info.pid}`);

    // Generous: on a loaded 2-core machine tsx alone can take tens of seconds to start.
    const s0 = Date.now();
    const stop = conveyor(['dev', '--stop', '--dev-config', devFile], 180000);
    process.stderr.write(`local stack stop: ${Date.now() - s0} ms\n`);
    expect(stop.out).toContain(`stopped the local stack (pid ${info.pid})`);
    expect(isAlive(info.pid)).toBe(false);
    for (const p of ports) expect(await isPortFree(p)).toBe(true);
    expect(fs.existsSync(stackJson())).toBe(false);
  }, 1_200_000);

  it('starts again on the same data dir: apt-get and dnf read the same repositories, Temporal lists the run', async () => {
    if (!first) throw new Error('the first test did not get as far as a stopped stack');
    const t0 = Date.now();
    const { info } = await startDev();
    process.stderr.write(`local stack restart: ${Date.now() - t0} ms\n`);
    expect(info.pid).not.toBe(first.pid);
    expect(info.awsEndpoint).toBe(first.awsEndpoint);

    // Temporal still has the run and its result, which says where it published; so does the CLI.
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
    const status = conveyor(['--config', configFile, 'status', runId, '--json'], 60000, {
      TEMPORAL_ADDRESS: info.temporalAddress,
    });
    expect(status.code).toBe(0);
    expect(JSON.parse(status.out.slice(status.out.indexOf('{')))).toMatchObject({
      workflowId: runId,
      status: 'succeeded',
    });

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
