// The API process as an operator runs it: `tsx api/main.ts`. It refuses to start without the
// webhook secret (unless --insecure-dev), with a short one, or with --insecure-dev beyond
// loopback; serves signed pushes with it, /runs and /metrics on its status listener only; starts
// even while Temporal is unreachable (spooling), and stops cleanly on SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import { pushPayload, sendWebhook } from '../../cli/webhook-client';
import { freePort, waitFor } from '../../cli/local-stack/services';
import { ROOT } from '../../cli/local-stack/tools';
import { entry } from '../helpers/entry';
import { pipelineId } from '../../common/ids';
import { clientFor, tempDir, testConfig, uid } from '../helpers/stack';

const SECRET_ENV = 'CONVEYOR_API_TEST_SECRET';
const SECRET = 'api-main-test-secret';
const REPO = 'acme/widget';

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function runApi(configFile: string, args: string[], secret?: string): Running {
  const env: NodeJS.ProcessEnv = { ...process.env, CONVEYOR_LOG_LEVEL: 'info' };
  for (const k of [SECRET_ENV, 'TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'CONVEYOR_CONFIG']) delete env[k];
  if (secret) env[SECRET_ENV] = secret;
  // --status-port 0: tests run side by side; the default status port (3001) is for one API per host.
  const api = entry('api', ['--config', configFile, '--status-port', '0', ...args]);
  const child = spawn(api.command, api.args, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function listening(api: Running): Promise<{ url: string; statusUrl: string }> {
  return waitFor(
    'the API to listen',
    () => {
      if (api.child.exitCode !== null) throw new Error(`api exited ${api.child.exitCode}: ${api.stderr()}`);
      const line = api
        .stdout()
        .split('\n')
        .find((l) => l.includes('"api listening"'));
      return Promise.resolve(line ? (JSON.parse(line) as { url: string; statusUrl: string }) : undefined);
    },
    { timeoutMs: 30000 },
  );
}

const listeningUrl = async (api: Running) => (await listening(api)).url;

describe('api/main.ts', () => {
  const running: Running[] = [];
  afterAll(() => {
    for (const r of running) if (r.child.exitCode === null) r.child.kill('SIGKILL');
  });

  const configFor = (temporalAddress?: string) =>
    testConfig([{ name: REPO, cloneUrl: '/nonexistent/widget.git', steps: { unit: 'true' } }], {
      github: { webhookSecretEnv: SECRET_ENV },
      api: { spoolDir: tempDir('api-main-spool') },
      ...(temporalAddress
        ? { temporal: { address: temporalAddress, namespace: 'default', taskQueue: `conveyor-${uid()}` } }
        : {}),
    });

  it('refuses to start without the webhook secret, saying how to fix it', async () => {
    const config = configFor();
    const api = runApi(config.file, ['--port', '0']);
    running.push(api);
    expect(await api.exited).toBe(1);
    expect(api.stderr()).toContain(
      `conveyor-api: no webhook secret: set ${SECRET_ENV} (github.webhookSecretEnv), or pass --insecure-dev`,
    );
    expect(api.stdout()).not.toContain('api listening');
  });

  it('refuses a short webhook secret and --insecure-dev beyond loopback, saying how to fix each', async () => {
    const short = runApi(configFor().file, ['--port', '0'], 'hunter2');
    const open = runApi(configFor().file, ['--port', '0', '--host', '0.0.0.0', '--insecure-dev']);
    running.push(short, open);
    expect(await short.exited).toBe(1);
    expect(short.stderr()).toContain(
      `conveyor-api: the webhook secret in ${SECRET_ENV} (github.webhookSecretEnv) has 7 characters: use at least 16`,
    );
    expect(await open.exited).toBe(1);
    expect(open.stderr()).toContain(
      'conveyor-api: --insecure-dev accepts unsigned webhooks from anyone who can reach 0.0.0.0: listen on 127.0.0.1',
    );
    expect(short.stdout() + open.stdout()).not.toContain('api listening');
  });

  it('with the secret: serves signed pushes, /runs and /metrics on the status listener only, stops on SIGTERM', async () => {
    const config = configFor();
    const api = runApi(config.file, ['--port', '0'], SECRET);
    running.push(api);
    const { url, statusUrl } = await listening(api);
    expect(statusUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(statusUrl).not.toBe(url);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);

    const sha = crypto.randomBytes(20).toString('hex');
    const payload = pushPayload({ repository: REPO, branch: 'main', sha });
    expect((await sendWebhook(url, 'wrong', 'push', payload)).status).toBe(401);
    expect(await sendWebhook(url, SECRET, 'push', payload)).toEqual({
      status: 202,
      body: { status: 'started', workflowId: pipelineId(REPO, 'main', sha) },
    });
    const client = await clientFor(config);
    try {
      await client.workflow.getHandle(pipelineId(REPO, 'main', sha)).describe();
    } finally {
      await client.connection.close();
    }
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
    expect((await fetch(`${url}/runs/${pipelineId(REPO, 'main', sha)}`)).status).toBe(404);
    const metrics = await fetch(`${statusUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^conveyor_api_runs_started_total\{source="webhook"\} 1$/m);
    expect(api.stdout()).not.toContain(SECRET);

    api.child.kill('SIGTERM');
    expect(await api.exited).toBe(0);
  });

  it('--insecure-dev starts without the secret, and starts while Temporal is unreachable (pushes spooled)', async () => {
    const config = configFor(`127.0.0.1:${await freePort()}`);
    const api = runApi(config.file, ['--port', '0', '--insecure-dev']);
    running.push(api);
    const url = await listeningUrl(api);
    expect(api.stdout()).toContain('--insecure-dev: webhook signatures are NOT verified');
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    const sha = crypto.randomBytes(20).toString('hex');
    const res = await sendWebhook(url, undefined, 'push', pushPayload({ repository: REPO, branch: 'main', sha }));
    expect(res).toEqual({ status: 202, body: { status: 'queued', workflowId: pipelineId(REPO, 'main', sha) } });
    api.child.kill('SIGTERM');
    expect(await api.exited).toBe(0);
  });
});
