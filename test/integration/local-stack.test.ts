// `conveyor demo` and `conveyor dev` as a user runs them, on a copy of the local stack's config
// with free ports and a temp data dir (never the ports of a running `npm run dev`). Two demos (a
// good one and a failing one on the stack it left up); the restart is `conveyor dev`'s own, and
// the first run is read back from it: a third whole chain would prove nothing more.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { freePort, isAlive, isPortFree, waitFor } from '../../cli/local-stack/services';
import { runningStack, type StackInfo } from '../../cli/local-stack/stack';
import { loadDevConfig } from '../../config/temporal-dev';
import { entry } from '../helpers/entry';
import { tempDir } from '../helpers/stack';

const ROOT = path.resolve(__dirname, '..', '..');

function conveyor(args: string[], timeoutMs = 300000, env: Record<string, string> = {}) {
  const cli = entry('cli', args);
  const r = spawnSync(cli.command, cli.args, {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, GITHUB_WEBHOOK_SECRET: '', ...env },
  });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe('local stack: conveyor demo, dev, dev --stop', () => {
  let dir: string;
  let devFile: string;
  let configFile: string;
  let ports: number[];

  beforeAll(async () => {
    dir = tempDir('stack');
    ports = [];
    for (let i = 0; i < 7; i++) ports.push(await freePort());
    const dev = parse(fs.readFileSync(path.join(ROOT, 'temporal-dev.yml'), 'utf8')) as Record<
      string,
      Record<string, unknown>
    >;
    dev.temporal = {
      ...dev.temporal,
      port: ports[0],
      uiPort: ports[1],
      httpPort: ports[2],
      metricsPort: ports[3],
      dbFile: 'data/temporal.db',
    };
    dev.aws = { ...dev.aws, port: ports[4], hosts: { perDistro: 1, tags: { Environment: 'staging' } } };
    dev.api = { port: ports[5], statusPort: ports[6] };
    (dev as Record<string, unknown>).dataDir = 'data';
    devFile = path.join(dir, 'temporal-dev.yml');
    fs.writeFileSync(devFile, stringify(dev));
    configFile = path.join(dir, 'conveyor.dev.yml');
    fs.copyFileSync(path.join(ROOT, 'conveyor.dev.yml'), configFile);
  });

  afterAll(() => {
    conveyor(['dev', '--stop', '--dev-config', devFile], 60000);
  });

  it('runs the demo end to end, leaves the stack up, refuses a second dev, and stops cleanly', async () => {
    const demo = conveyor(['--config', configFile, 'demo', '--dev-config', devFile]);
    expect(demo.out).toContain('run succeeded: pipeline/demo/widget/main/');
    expect(demo.out).toMatch(
      new RegExp(
        `Web UI: http://127\\.0\\.0\\.1:${ports[1]}/namespaces/default/workflows/pipeline%2Fdemo%2Fwidget%2F[^ ]+%2F[0-9a-f]{40}`,
      ),
    );
    expect(demo.code).toBe(0);

    const info = JSON.parse(fs.readFileSync(path.join(dir, 'data', 'stack.json'), 'utf8')) as StackInfo;
    expect(isAlive(info.pid)).toBe(true);
    const ui = await fetch(info.uiUrl);
    expect(ui.status).toBe(200);
    expect((await fetch(`${info.apiUrl}/healthz`)).status).toBe(200);
    // /runs and /metrics: on the status listener, not on the webhook listener.
    expect(info.statusUrl).toBe(`http://127.0.0.1:${ports[6]}`);
    expect((await fetch(`${info.statusUrl}/metrics`)).status).toBe(200);
    expect((await fetch(`${info.apiUrl}/metrics`)).status).toBe(404);
    // Temporal state lives in the SQLite file under the data dir.
    expect(fs.existsSync(path.join(dir, 'data', 'temporal.db'))).toBe(true);

    // A failing demo exits non-zero with the failing stage and its log tail.
    const failing = conveyor(['--config', configFile, 'demo', '--dev-config', devFile, '--fail']);
    expect(failing.code).toBe(1);
    expect(failing.out).toContain('failing stage: test: unit exited with code 2');
    expect(failing.out).toContain('unit: failing on purpose');

    const second = conveyor(['--config', configFile, 'dev', '--dev-config', devFile], 60000);
    expect(second.code).toBe(1);
    expect(second.out).toContain(`the local stack is already running (pid ${info.pid}`);

    const stop = conveyor(['dev', '--stop', '--dev-config', devFile], 60000);
    expect(stop.out).toContain(`stopped the local stack (pid ${info.pid})`);
    expect(isAlive(info.pid)).toBe(false);
    for (const p of ports) expect(await isPortFree(p)).toBe(true);
    expect(fs.existsSync(path.join(dir, 'data', 'stack.json'))).toBe(false);

    // Runs survive a restart of the stack (SQLite file): the first run is still there to query.
    const firstId = /run succeeded: (\S+)/.exec(demo.out)![1];
    const dev = entry('cli', ['--config', configFile, 'dev', '--dev-config', devFile]);
    const log = fs.openSync(path.join(dir, 'dev-restart.log'), 'a');
    const restarted = spawn(dev.command, dev.args, {
      cwd: ROOT,
      stdio: ['ignore', log, log],
      env: { ...process.env, GITHUB_WEBHOOK_SECRET: '' },
    });
    fs.closeSync(log);
    const exited = new Promise<number | null>((r) => restarted.once('exit', r));
    const devConfig = loadDevConfig(devFile);
    const up = await waitFor(
      'the restarted local stack',
      () => {
        if (restarted.exitCode !== null)
          throw new Error(`conveyor dev exited with code ${restarted.exitCode}: ${path.join(dir, 'dev-restart.log')}`);
        return Promise.resolve(runningStack(devConfig));
      },
      { timeoutMs: 240000, intervalMs: 500 },
    );
    expect(up.pid).toBe(restarted.pid);
    const status = conveyor(['--config', configFile, 'status', firstId, '--json'], 60000, {
      TEMPORAL_ADDRESS: `127.0.0.1:${ports[0]}`,
    });
    expect(status.code).toBe(0);
    expect(JSON.parse(status.out.slice(status.out.indexOf('{')))).toMatchObject({
      workflowId: firstId,
      status: 'succeeded',
    });
    expect(conveyor(['dev', '--stop', '--dev-config', devFile], 60000).out).toContain(
      `stopped the local stack (pid ${restarted.pid})`,
    );
    expect(await exited).toBe(0);
  });
});
