// `conveyor demo` and `conveyor dev` as a user runs them, on a copy of the local stack's config
// with free ports and a temp data dir (never the ports of a running `npm run dev`).
import fs from 'node:fs';
import path from 'node:path';
import { isAlive, isPortFree } from '../../cli/local-stack/services';
import type { StackInfo } from '../../cli/local-stack/stack';
import { conveyor, devStackFiles } from '../helpers/dev-stack';

describe('local stack: conveyor demo, dev, dev --stop', () => {
  let dir: string;
  let devFile: string;
  let configFile: string;
  let ports: number[];

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

    const stop = conveyor(['dev', '--stop', '--dev-config', devFile], 180000);
    expect(stop.out).toContain(`stopped the local stack (pid ${info.pid})`);
    expect(isAlive(info.pid)).toBe(false);
    for (const p of ports) expect(await isPortFree(p)).toBe(true);
    expect(fs.existsSync(path.join(dir, 'data', 'stack.json'))).toBe(false);

    // Runs survive a restart of the stack (SQLite file): the first run is still there to query.
    const firstId = /run succeeded: (\S+)/.exec(demo.out)![1];
    const again = conveyor(['--config', configFile, 'demo', '--dev-config', devFile]);
    expect(again.code).toBe(0);
    const status = conveyor(['--config', configFile, 'status', firstId, '--json'], 60000, {
      TEMPORAL_ADDRESS: `127.0.0.1:${ports[0]}`,
    });
    expect(status.code).toBe(0);
    expect(JSON.parse(status.out.slice(status.out.indexOf('{')))).toMatchObject({
      workflowId: firstId,
      status: 'succeeded',
    });
  }, 1_200_000);
});
