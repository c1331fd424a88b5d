// The webhook API over real HTTP against the test stack's Temporal server: every kind of delivery
// with its status code, and whether a run started, checked on the server (describe, count); the
// status listener (/runs, /metrics) apart from the webhook listener, or behind a bearer token.
// No workers poll this config's task queue: a started run just waits, which is all we look at.
import crypto from 'node:crypto';
import http from 'node:http';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import pino from 'pino';
import type { RunSummary } from '../../api/run-summary';
import { createApi, listen, type Api } from '../../api/server';
import { createWebhooks } from '../../api/octokit';
import { pushPayload, sendWebhook } from '../../cli/webhook-client';
import { pipelineId } from '../../common/ids';
import type { ConveyorConfig } from '../../config/conveyor';
import { clientFor, tempDir, testConfig } from '../helpers/stack';

const SECRET = 'api-webhook-test-secret';
const LIMIT = 1024 * 1024;
const REPO = 'acme/widget';

const newSha = () => crypto.randomBytes(20).toString('hex');

describe('webhook API', () => {
  let config: ConveyorConfig;
  let client: Client;
  let api: Api;
  let url: string;
  let statusUrl: string;
  let logs: string[];

  beforeAll(async () => {
    config = testConfig(
      [
        {
          name: REPO,
          cloneUrl: '/nonexistent/widget.git',
          steps: { unit: 'true' },
          branches: [
            { match: 'main', channel: 'unstable' },
            { match: 'v*.*', channel: 'stable', release: true },
          ],
        },
      ],
      { api: { maxBodyBytes: LIMIT, spoolDir: tempDir('api-webhook-spool') } },
    );
    client = await clientFor(config);
    logs = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });
    api = createApi({ config, client, logger, secret: SECRET });
    url = `http://127.0.0.1:${await listen(api.server, 0)}`;
    statusUrl = `http://127.0.0.1:${await listen(api.statusServer, 0)}`;
  });

  afterAll(async () => {
    await api?.close();
    await client?.connection.close();
  });

  const push = (sha: string, over: { branch?: string; delivery?: string; message?: string } = {}) =>
    sendWebhook(
      url,
      SECRET,
      'push',
      pushPayload({ repository: REPO, branch: over.branch ?? 'main', sha, message: over.message ?? 'change' }),
      over.delivery,
    );

  /** Runs of this commit on the server, whatever their workflow ID. */
  async function runsOf(sha: string, atLeast = 0): Promise<number> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const { count } = await client.workflow.count(`ConveyorCommit = "${sha}"`);
      if (count >= atLeast || Date.now() > deadline) return count;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function exists(workflowId: string): Promise<boolean> {
    try {
      await client.workflow.getHandle(workflowId).describe();
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  it('config defaults: 25 MB body limit, spool next to the config, 5 s start limit, status on loopback', () => {
    const plain = testConfig([]);
    expect(plain.api).toMatchObject({
      maxBodyBytes: 25 * 1024 * 1024,
      spoolDir: '.conveyor/spool',
      startTimeoutMs: 5000,
      statusHost: '127.0.0.1',
      statusPort: 3001,
    });
    expect(plain.api.statusTokenEnv).toBeUndefined();
    expect(plain.github.apiUrl).toBe('https://api.github.com');
  });

  it('a push to a monitored branch starts one run; a redelivery and a second delivery answer 200 with it', async () => {
    const sha = newSha();
    const id = pipelineId(REPO, 'main', sha);
    const first = await push(sha, { delivery: 'delivery-1' });
    expect(first).toEqual({ status: 202, body: { status: 'started', workflowId: id } });
    expect(await exists(id)).toBe(true);

    const redelivery = await push(sha, { delivery: 'delivery-1' });
    expect(redelivery).toEqual({ status: 200, body: { status: 'existing', workflowId: id } });
    const second = await push(sha, { delivery: 'delivery-2' });
    expect(second).toEqual({ status: 200, body: { status: 'existing', workflowId: id } });
    expect(await runsOf(sha, 1)).toBe(1);

    const desc = await client.workflow.getHandle(id).describe();
    expect(desc.taskQueue).toBe(config.temporal.taskQueue);
    expect(desc.memo).toMatchObject({ deliveryId: 'delivery-1' });
  });

  it('200 concurrent duplicate deliveries of one push, to two API instances, start exactly one run', async () => {
    const otherClient = await clientFor(config);
    const other = createApi({
      config,
      client: otherClient,
      logger: pino({ level: 'silent' }),
      secret: SECRET,
      spoolDir: tempDir('api-webhook-spool-2'),
    });
    const otherUrl = `http://127.0.0.1:${await listen(other.server, 0)}`;
    try {
      const sha = newSha();
      const id = pipelineId(REPO, 'main', sha);
      const payload = pushPayload({ repository: REPO, branch: 'main', sha, message: 'concurrent' });
      // Half redeliveries of one delivery, half separate deliveries of the same push.
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          sendWebhook(i % 2 ? url : otherUrl, SECRET, 'push', payload, i % 4 < 2 ? 'same-delivery' : `delivery-${i}`),
        ),
      );
      const started = answers.filter((a) => a.status === 202 && a.body.status === 'started');
      const existing = answers.filter((a) => a.status === 200 && a.body.status === 'existing');
      expect(started).toHaveLength(1);
      expect(existing).toHaveLength(199);
      expect(new Set(answers.map((a) => a.body.workflowId))).toEqual(new Set([id]));
      expect(await runsOf(sha, 1)).toBe(1);
      await new Promise((r) => setTimeout(r, 500)); // a late duplicate would show by now
      expect(await runsOf(sha)).toBe(1);
    } finally {
      await other.close();
      await otherClient.connection.close();
    }
  });

  it('answers 202 with the reason and starts nothing for tags, deletions, other branches, other repositories, other events', async () => {
    const sha = newSha();
    const base = pushPayload({ repository: REPO, branch: 'main', sha });
    const cases: [string, unknown, string][] = [
      ['push', { ...base, ref: 'refs/tags/v1.0.0' }, 'ignored: tag push'],
      ['push', { ...base, deleted: true, after: '0'.repeat(40) }, 'ignored: branch deleted'],
      ['push', { ...base, ref: 'refs/heads/feature/x' }, 'ignored: branch not monitored'],
      [
        'push',
        { ...base, repository: { full_name: 'other/repo' } },
        'ignored: repository other/repo is not configured',
      ],
      ['issues', { action: 'opened' }, 'ignored: event issues is not handled'],
      ['pull_request', base, 'ignored: event pull_request is not handled'],
    ];
    for (const [event, payload, reason] of cases) {
      const res = await sendWebhook(url, SECRET, event, payload);
      expect({ event, res }).toEqual({ event, res: { status: 202, body: { status: 'ignored', reason } } });
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(await runsOf(sha)).toBe(0);
  });

  it('accepts every event name GitHub sends, digits included (projects_v2_item); refuses header garbage', async () => {
    for (const event of ['projects_v2_item', 'projects_v2', 'branch_protection_configuration', 'sub_issues']) {
      const res = await sendWebhook(url, SECRET, event, { action: 'edited' });
      expect({ event, res }).toEqual({
        event,
        res: { status: 202, body: { status: 'ignored', reason: `ignored: event ${event} is not handled` } },
      });
    }
    for (const event of ['Push', 'push.v2', '2push', 'pu sh', 'x'.repeat(65)]) {
      const res = await sendWebhook(url, SECRET, event, { action: 'edited' });
      expect({ event, status: res.status }).toEqual({ event, status: 400 });
      expect(res.body.error).toMatch(/^malformed X-GitHub-Event header: expected a GitHub event name/);
    }
  });

  it('a signed push with wrong-typed fields is 400 with the field named, not 500, and starts nothing', async () => {
    const sha = newSha();
    const base = pushPayload({ repository: REPO, branch: 'main', sha });
    const cases: [string, Record<string, unknown>][] = [
      ['ref', { ref: 12 }],
      ['ref', { ref: { name: 'refs/heads/main' } }],
      ['repository.full_name', { repository: { full_name: ['acme/widget'] } }],
      ['after', { after: 1234 }],
      ['head_commit', { head_commit: 'not an object' }],
      ['deleted', { deleted: 'false' }],
    ];
    for (const [field, over] of cases) {
      const res = await sendWebhook(url, SECRET, 'push', { ...base, ...over });
      expect({ field, status: res.status }).toEqual({ field, status: 400 });
      expect(res.body.error).toMatch(/^malformed push payload \(/);
      expect(res.body.error).toContain(`${field}: `);
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(await runsOf(sha)).toBe(0);
    expect(logs.join('')).not.toMatch(/"msg":"request failed"/);
  });

  it('ping answers 200 with the hook ID', async () => {
    const res = await sendWebhook(url, SECRET, 'ping', { zen: 'Keep it logically awesome.', hook_id: 4242 });
    expect(res).toEqual({ status: 200, body: { status: 'pong', hookId: 4242 } });
  });

  it('a missing or wrong signature is 401, starts nothing and logs nothing of the body', async () => {
    const sha = newSha();
    const marker = `body-marker-${crypto.randomBytes(6).toString('hex')}`;
    const payload = pushPayload({ repository: REPO, branch: 'main', sha, message: marker });
    const wrong = await sendWebhook(url, 'not-the-secret', 'push', payload);
    expect(wrong).toEqual({ status: 401, body: { error: 'signature does not match: check the webhook secret' } });
    const missing = await sendWebhook(url, undefined, 'push', payload);
    expect(missing).toEqual({
      status: 401,
      body: { error: 'missing X-Hub-Signature-256: set the webhook secret on GitHub' },
    });
    const garbage = await post({ body: JSON.stringify(payload), headers: { 'x-hub-signature-256': 'sha256=zz' } });
    expect(garbage.status).toBe(401);
    expect(await exists(pipelineId(REPO, 'main', sha))).toBe(false);
    expect(logs.join('')).not.toContain(marker);
    expect(logs.join('')).not.toContain(sha);
  });

  it('answers bad requests fast and clearly: 400 for missing headers and bad JSON, 415 for a wrong content type', async () => {
    const body = JSON.stringify(pushPayload({ repository: REPO, branch: 'main', sha: newSha() }));
    const signed = async (text: string) => ({ 'x-hub-signature-256': await sign(text) });

    const noEvent = await post({ body, headers: { ...(await signed(body)), 'x-github-event': '' } });
    expect(noEvent.status).toBe(400);
    expect(noEvent.json.error).toMatch(/missing X-GitHub-Event or X-GitHub-Delivery/);
    const noDelivery = await post({ body, headers: { ...(await signed(body)), 'x-github-delivery': '' } });
    expect(noDelivery.status).toBe(400);

    const form = await post({
      body: `payload=${encodeURIComponent(body)}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(415);
    expect(form.json.error).toMatch(/set the webhook's content type to application\/json/);

    const notJson = '{"ref": "refs/heads/main",';
    const bad = await post({ body: notJson, headers: await signed(notJson) });
    expect(bad).toMatchObject({ status: 400, json: { error: 'body is not valid JSON' } });
    const list = '[1,2]';
    expect((await post({ body: list, headers: await signed(list) })).status).toBe(400);
    const latin1 = Buffer.from([0x7b, 0xe9, 0x7d]); // "{é}" in Latin-1: not UTF-8
    expect((await post({ body: latin1, headers: { 'x-hub-signature-256': 'sha256=00' } })).status).toBe(400);
  });

  it('413 for a declared Content-Length over the limit, before any body byte is sent', async () => {
    const t0 = Date.now();
    const res = await rawPost({ declaredLength: 30 * 1024 * 1024, sendBytes: 0 });
    expect(res.status).toBe(413);
    expect(res.body).toMatch(/over the limit of 1048576/);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('413 for a chunked body without Content-Length as soon as it crosses the limit, without reading it all', async () => {
    const t0 = Date.now();
    const total = 512 * 1024 * 1024;
    const res = await rawPost({ sendBytes: total });
    expect(res.status).toBe(413);
    expect(res.body).toMatch(/over the limit of 1048576 bytes/);
    // The server stopped reading long before the end (socket buffers hold a few MB at most).
    expect(res.sentBeforeAnswer).toBeLessThan(64 * 1024 * 1024);
    expect(Date.now() - t0).toBeLessThan(5000);
    // And it still serves.
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it('a body just under the limit is read and verified', async () => {
    const payload = { zen: 'x'.repeat(LIMIT - 100), hook_id: 1 };
    const res = await sendWebhook(url, SECRET, 'ping', payload);
    expect(res.status).toBe(200);
  });

  it('status endpoints on the status listener: healthz, readyz, runs (404 for unknown or non-pipeline IDs), metrics', async () => {
    for (const base of [url, statusUrl]) {
      expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ready', temporal: 'reachable', spooled: 0 });
    }

    const unknown = await fetch(`${statusUrl}/runs/${pipelineId(REPO, 'main', newSha())}`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toMatch(/^no run pipeline\/acme\/widget\/main\//);
    expect((await fetch(`${statusUrl}/runs/branch-state/acme/widget/main`)).status).toBe(404);
    expect((await fetch(`${statusUrl}/runs/%E0%A4%A`)).status).toBe(400);

    const metrics = await fetch(`${statusUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0.0.4/);
    const text = await metrics.text();
    expect(text).toMatch(/^conveyor_api_deliveries_total\{outcome="started"\} [1-9]/m);
    expect(text).toMatch(/^conveyor_api_deliveries_total\{outcome="unauthorized"\} [1-9]/m);
    expect(text).toMatch(/^conveyor_api_deliveries_total\{outcome="too_large"\} [1-9]/m);
    expect(text).toMatch(/^conveyor_api_runs_started_total\{source="webhook"\} [1-9]/m);
    expect(text).toMatch(/^conveyor_api_start_duration_seconds_count [1-9]/m);
    expect(text).toMatch(/^conveyor_api_spool_depth 0$/m);
    expect(text).toMatch(/^conveyor_api_open_connections [0-9]+$/m);

    expect((await fetch(`${url}/webhooks/github`)).status).toBe(405);
    expect((await fetch(`${statusUrl}/webhooks/github`, { method: 'POST' })).status).toBe(404);
    expect((await fetch(`${statusUrl}/metrics`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${url}/admin/retry`, { method: 'POST' })).status).toBe(404);
  });

  it('the webhook listener does not serve /runs or /metrics without a token configured', async () => {
    for (const p of ['/metrics', `/runs/${pipelineId(REPO, 'main', newSha())}`]) {
      const res = await fetch(`${url}${p}`, { headers: { authorization: 'Bearer anything-at-all-here' } });
      expect(res.status).toBe(404);
      const body = (await res.json()) as { error: string };
      expect(body.error).toMatch(/not served on the webhook listener: read them on the status listener/);
      expect(body.error).toMatch(/set api\.statusTokenEnv/);
    }
  });

  it('with a bearer token: /runs and /metrics need it on both listeners, healthz stays public', async () => {
    const token = crypto.randomBytes(24).toString('hex');
    const guarded = createApi({
      config,
      client,
      logger: pino({ level: 'silent' }),
      secret: SECRET,
      statusToken: token,
      spoolDir: tempDir('api-webhook-spool-token'),
    });
    const g = `http://127.0.0.1:${await listen(guarded.server, 0)}`;
    const gs = `http://127.0.0.1:${await listen(guarded.statusServer, 0)}`;
    try {
      const run = `/runs/${pipelineId(REPO, 'main', newSha())}`;
      for (const base of [g, gs]) {
        for (const p of ['/metrics', run]) {
          for (const auth of [undefined, 'Bearer wrong-token-of-some-length', `Basic ${token}`, `Bearer ${token}x`]) {
            const res = await fetch(`${base}${p}`, { headers: auth ? { authorization: auth } : {} });
            expect({ base, p, auth, status: res.status }).toEqual({ base, p, auth, status: 401 });
            expect(res.headers.get('www-authenticate')).toBe('Bearer realm="conveyor"');
            expect(((await res.json()) as { error: string }).error).toMatch(/send Authorization: Bearer/);
          }
        }
        const ok = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } });
        expect(ok.status).toBe(200);
        expect(await ok.text()).toMatch(/^conveyor_api_spool_depth 0$/m);
        // Authorized: a run that does not exist is a 404, no longer a 401.
        expect((await fetch(`${base}${run}`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
        expect((await fetch(`${base}/healthz`)).status).toBe(200);
      }
    } finally {
      await guarded.close();
    }
  });

  it('GET /runs of a run no worker answers for is 504 after the time limit, not an outage, with what the server knows', async () => {
    const quick = createApi({
      config,
      client,
      logger: pino({ level: 'silent' }),
      secret: SECRET,
      startTimeoutMs: 1000,
      spoolDir: tempDir('api-webhook-spool-3'),
    });
    const quickUrl = `http://127.0.0.1:${await listen(quick.statusServer, 0)}`;
    try {
      const sha = newSha();
      const id = pipelineId(REPO, 'main', sha);
      expect((await push(sha, { message: 'nobody answers' })).status).toBe(202);
      const t0 = Date.now();
      const res = await fetch(`${quickUrl}/runs/${id}`);
      const elapsed = Date.now() - t0;
      const body = (await res.json()) as { error: string; server: RunSummary };
      expect(res.status).toBe(504);
      expect(body.error).toMatch(/^no orchestrator worker answered the status query of pipeline\//);
      expect(body.error).toMatch(/is the orchestrator worker running\?/);
      expect(body.error).toContain(`task queue ${config.temporal.taskQueue}`);
      expect(body.server).toMatchObject({
        workflowId: id,
        type: 'pipeline',
        status: 'RUNNING',
        taskQueue: config.temporal.taskQueue,
        searchAttributes: {
          ConveyorRepository: REPO,
          ConveyorBranch: 'main',
          ConveyorCommit: sha,
          ConveyorStatus: 'queued',
        },
        memo: { commitMessage: 'nobody answers' },
        pendingActivities: [],
      });
      expect(elapsed).toBeLessThan(3000);
      expect(quick.gate.up).toBe(true);
    } finally {
      await quick.close();
    }
  });

  async function sign(text: string): Promise<string> {
    return (await createWebhooks(SECRET)).sign(text);
  }

  async function post(o: { body: string | Buffer; headers?: Record<string, string> }) {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'x-github-event': 'push',
      'x-github-delivery': crypto.randomUUID(),
      ...o.headers,
    };
    for (const [k, v] of Object.entries(headers)) if (v === '') delete headers[k];
    const res = await fetch(`${url}/webhooks/github`, { method: 'POST', headers, body: o.body });
    return { status: res.status, json: (await res.json()) as { error?: string; status?: string } };
  }

  /** POST with node:http so the body can be streamed, or announced and never sent. */
  function rawPost(o: { declaredLength?: number; sendBytes: number }) {
    return new Promise<{ status?: number; body: string; sentBeforeAnswer: number }>((resolve, reject) => {
      const target = new URL(url);
      let sent = 0;
      let answered = false;
      const req = http.request({
        host: target.hostname,
        port: target.port,
        method: 'POST',
        path: '/webhooks/github',
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'push',
          'x-github-delivery': crypto.randomUUID(),
          'x-hub-signature-256': 'sha256=00',
          ...(o.declaredLength ? { 'content-length': String(o.declaredLength) } : {}),
        },
      });
      req.on('response', (res) => {
        answered = true;
        const sentBeforeAnswer = sent;
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode, body, sentBeforeAnswer }));
        res.on('error', () => resolve({ status: res.statusCode, body, sentBeforeAnswer }));
      });
      req.on('error', (err) => {
        if (!answered) reject(err);
      });
      if (o.declaredLength) {
        req.flushHeaders();
        return;
      }
      const chunk = Buffer.alloc(256 * 1024, 0x20);
      const pump = () => {
        while (!answered && sent < o.sendBytes) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        if (!answered) req.end();
      };
      pump();
    });
  }
});
