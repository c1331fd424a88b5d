// Duplicate deliveries answered from the API's cache of runs known to exist (api/recent-starts.ts),
// against the test stack's Temporal server: no start call for a cached duplicate (the start
// histogram of /metrics counts every StartWorkflowExecution the API makes), the signature checked
// before the cache, a miss (a restarted API, an expired entry) asking Temporal again, and a cached
// duplicate answered while Temporal is unreachable. No workers poll this config's task queue.
import crypto from 'node:crypto';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { createApi, listen, type Api, type ApiDeps } from '../../api/server';
import { createWebhooks } from '../../api/octokit';
import { pushPayload, sendWebhook } from '../../cli/webhook-client';
import { pipelineId } from '../../common/ids';
import type { ConveyorConfig } from '../../config/conveyor';
import { clientFor, tempDir, testConfig } from '../helpers/stack';

const SECRET = 'api-recent-starts-secret';
const REPO = 'acme/widget';
const newSha = () => crypto.randomBytes(20).toString('hex');

describe('webhook API: duplicates answered from recent starts', () => {
  let config: ConveyorConfig;
  let client: Client;
  const opened: { api: Api; url: string; statusUrl: string }[] = [];

  beforeAll(async () => {
    config = testConfig([{ name: REPO, cloneUrl: '/nonexistent/widget.git', steps: { unit: 'true' } }], {
      api: { spoolDir: tempDir('api-recent-starts-spool') },
    });
    client = await clientFor(config);
  });

  afterAll(async () => {
    await Promise.all(opened.map((o) => o.api.close()));
    await client?.connection.close();
  });

  async function startApi(over: Partial<ApiDeps> = {}) {
    const api = createApi({
      config,
      client,
      logger: pino({ level: 'silent' }),
      secret: SECRET,
      spoolDir: tempDir('api-recent-starts-spool'),
      ...over,
    });
    const o = {
      api,
      url: `http://127.0.0.1:${await listen(api.server, 0)}`,
      statusUrl: `http://127.0.0.1:${await listen(api.statusServer, 0)}`,
    };
    opened.push(o);
    return o;
  }

  const payload = (sha: string, message = 'change') => pushPayload({ repository: REPO, branch: 'main', sha, message });
  const push = (url: string, sha: string, delivery?: string) =>
    sendWebhook(url, SECRET, 'push', payload(sha), delivery);

  /** StartWorkflowExecution calls this API instance has made. */
  async function startCalls(statusUrl: string): Promise<number> {
    const text = await (await fetch(`${statusUrl}/metrics`)).text();
    return Number(/^conveyor_api_start_duration_seconds_count (\d+)$/m.exec(text)?.[1] ?? NaN);
  }

  async function runsOf(sha: string): Promise<number> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const { count } = await client.workflow.count(`ConveyorCommit = "${sha}"`);
      if (count >= 1 || Date.now() > deadline) return count;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('redeliveries and second deliveries of a started push: 200 existing, no call to Temporal', async () => {
    const { url, statusUrl } = await startApi();
    const sha = newSha();
    const id = pipelineId(REPO, 'main', sha);
    expect(await push(url, sha, 'first')).toEqual({ status: 202, body: { status: 'started', workflowId: id } });
    expect(await startCalls(statusUrl)).toBe(1);
    const again = await Promise.all([
      push(url, sha, 'first'),
      ...Array.from({ length: 20 }, (_, i) => push(url, sha, `other-${i}`)),
    ]);
    for (const a of again) expect(a).toEqual({ status: 200, body: { status: 'existing', workflowId: id } });
    expect(await startCalls(statusUrl)).toBe(1);
    expect(await runsOf(sha)).toBe(1);
  });

  it('the signature is checked before the cache: a cached push with a wrong, missing or stale signature is refused', async () => {
    const { url, statusUrl } = await startApi();
    const sha = newSha();
    expect((await push(url, sha)).status).toBe(202);
    expect(await sendWebhook(url, 'not-the-secret', 'push', payload(sha))).toMatchObject({ status: 401 });
    expect(await sendWebhook(url, undefined, 'push', payload(sha))).toMatchObject({ status: 401 });
    // The signature of the original body over a changed one (same repository, branch and commit).
    const signature = await (await createWebhooks(SECRET)).sign(JSON.stringify(payload(sha)));
    const res = await fetch(`${url}/webhooks/github`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-github-delivery': 'tampered',
        'x-hub-signature-256': signature,
      },
      body: JSON.stringify(payload(sha, 'tampered')),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'signature does not match: check the webhook secret' });
    const metrics = await (await fetch(`${statusUrl}/metrics`)).text();
    expect(metrics).toMatch(/^conveyor_api_deliveries_total\{outcome="unauthorized"\} 3$/m);
    expect(metrics).not.toMatch(/outcome="existing"/);
    expect(await startCalls(statusUrl)).toBe(1);
  });

  it('a miss asks Temporal: a restarted API answers a duplicate from Temporal once, then from its cache', async () => {
    const first = await startApi();
    const sha = newSha();
    const id = pipelineId(REPO, 'main', sha);
    expect((await push(first.url, sha)).status).toBe(202);
    await first.api.close();

    const restarted = await startApi();
    expect(await push(restarted.url, sha)).toEqual({ status: 200, body: { status: 'existing', workflowId: id } });
    expect(await startCalls(restarted.statusUrl)).toBe(1);
    expect(await push(restarted.url, sha)).toEqual({ status: 200, body: { status: 'existing', workflowId: id } });
    expect(await startCalls(restarted.statusUrl)).toBe(1);
    expect(await runsOf(sha)).toBe(1);
  });

  it('an expired entry asks Temporal again; ttlMs 0 asks every time', async () => {
    const short = await startApi({ recentStarts: { ttlMs: 300 } });
    const sha = newSha();
    expect((await push(short.url, sha)).status).toBe(202);
    expect((await push(short.url, sha)).body.status).toBe('existing');
    expect(await startCalls(short.statusUrl)).toBe(1);
    await new Promise((r) => setTimeout(r, 400));
    expect((await push(short.url, sha)).body.status).toBe('existing');
    expect(await startCalls(short.statusUrl)).toBe(2);

    const off = await startApi({ recentStarts: { ttlMs: 0 } });
    for (let i = 0; i < 3; i++) expect((await push(off.url, sha)).body.status).toBe('existing');
    expect(await startCalls(off.statusUrl)).toBe(3);
    expect(await runsOf(sha)).toBe(1);
  });

  it('with Temporal unreachable: a cached duplicate still answers existing, a new push is spooled', async () => {
    const own = await clientFor(config);
    const { api, url } = await startApi({ client: own, startTimeoutMs: 2000 });
    const known = newSha();
    expect((await push(url, known)).status).toBe(202);
    await own.connection.close();
    const fresh = newSha();
    expect(await push(url, fresh)).toEqual({
      status: 202,
      body: { status: 'queued', workflowId: pipelineId(REPO, 'main', fresh) },
    });
    expect(api.gate.up).toBe(false);
    expect(await push(url, known)).toEqual({
      status: 200,
      body: { status: 'existing', workflowId: pipelineId(REPO, 'main', known) },
    });
    expect(api.spool.depth()).toBe(1);
  });
});
