// Temporal going away under the webhook API: this file runs its OWN Temporal dev server (SQLite
// file in a temp dir), stops it mid-test and starts it again on the same ports and database, as an
// operator's restart would. Verified pushes answered 202 "queued" while it is down must start
// exactly once when it is back, oldest first, through the API's own reconnection; an API
// restart drains what an earlier instance spooled; a Temporal that accepts connections but never
// answers still gets a delivery answered within GitHub's 10 seconds.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { createApi, listen, type Api } from '../../api/server';
import { startTemporalServer, type TemporalServerOptions } from '../../cli/local-stack/servers';
import { isPortFree, waitFor, type Service } from '../../cli/local-stack/services';
import { pushPayload, sendWebhook } from '../../cli/webhook-client';
import { pipelineId } from '../../common/ids';
import type { ConveyorConfig } from '../../config/conveyor';
import { connectClient } from '../../workers/temporal';
import { clientFor, ownServerOptions, tempDir, testConfig, uid } from '../helpers/stack';

const SECRET = 'api-outage-test-secret';
const REPO = 'acme/widget';
const newSha = () => crypto.randomBytes(20).toString('hex');

describe('webhook API while Temporal is away', () => {
  let dir: string;
  let server: TemporalServerOptions;
  let temporal: Service | undefined;
  let config: ConveyorConfig;
  let spoolDir: string;
  let logs: { msg: string }[];
  let api: Api;
  let url: string;
  let statusUrl: string;
  const shas = { a: newSha(), b: newSha(), c: newSha(), d: newSha(), e: newSha() };
  // A second instance on a client the test made (no rebuild by the API): the SDK's own channel
  // must find the restarted server by itself.
  let plainClient: Client | undefined;
  let plain: Api | undefined;
  let plainUrl: string;
  const id = (sha: string) => pipelineId(REPO, 'main', sha);

  const startApi = () => {
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => void logs.push(JSON.parse(line) as { msg: string }) },
    );
    return createApi({
      config,
      connect: () => connectClient(config, {}),
      logger,
      secret: SECRET,
      startTimeoutMs: 2000,
      drainBackoffMs: { initial: 200, max: 1000 },
      reconnectAfterMs: 2000,
    });
  };
  const push = (sha: string, delivery?: string) =>
    sendWebhook(url, SECRET, 'push', pushPayload({ repository: REPO, branch: 'main', sha, message: sha }), delivery);
  const logged = (msg: string) => logs.filter((l) => l.msg === msg).length;

  async function stopTemporal(): Promise<void> {
    await temporal?.stop();
    temporal = undefined;
    // FACTS.md: a restart on the same ports fails until the old process has let go of them.
    await waitFor('Temporal ports to be free', async () => {
      const free = await Promise.all([server.port, server.httpPort, server.metricsPort].map(isPortFree));
      return free.every(Boolean);
    });
  }

  /** A fresh client per check: the test's own view must not depend on a reconnecting channel. */
  async function onServer<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = await clientFor(config);
    try {
      return await fn(c);
    } finally {
      await c.connection.close();
    }
  }
  // Visibility is eventually consistent: a run just started may take a moment to be counted.
  const runsOf = async (sha: string) => {
    let n = 0;
    for (let i = 0; i < 50; i++) {
      n = await onServer(async (c) => (await c.workflow.count(`WorkflowId = "${id(sha)}"`)).count);
      if (n > 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    return n;
  };

  beforeAll(async () => {
    dir = tempDir('api-outage');
    server = await ownServerOptions(dir);
    temporal = await startTemporalServer(server);
    spoolDir = path.join(dir, 'spool');
    config = testConfig([{ name: REPO, cloneUrl: '/nonexistent/widget.git', steps: { unit: 'true' } }], {
      temporal: { address: `127.0.0.1:${server.port}`, namespace: 'default', taskQueue: `conveyor-${uid()}` },
      api: { spoolDir },
    });
    logs = [];
    api = startApi();
    url = `http://127.0.0.1:${await listen(api.server, 0)}`;
    statusUrl = `http://127.0.0.1:${await listen(api.statusServer, 0)}`;
    plainClient = await clientFor(config);
    plain = createApi({
      config,
      client: plainClient,
      logger: pino({ level: 'silent' }),
      secret: SECRET,
      spoolDir: path.join(dir, 'spool-plain'),
      startTimeoutMs: 2000,
      drainBackoffMs: { initial: 200, max: 1000 },
    });
    plainUrl = `http://127.0.0.1:${await listen(plain.server, 0)}`;
  });

  afterAll(async () => {
    await api?.close();
    await plain?.close();
    await plainClient?.connection.close();
    await temporal?.stop();
  });

  it('with Temporal up a push starts its run', async () => {
    expect(await push(shas.a)).toEqual({ status: 202, body: { status: 'started', workflowId: id(shas.a) } });
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });

  it('with Temporal down: /readyz 503, pushes answered 202 queued and spooled durably, the outage logged once', async () => {
    await stopTemporal();
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'unavailable', temporal: 'unreachable', spooled: 0 });

    const t0 = Date.now();
    const b = await push(shas.b, 'delivery-b');
    expect(b).toEqual({ status: 202, body: { status: 'queued', workflowId: id(shas.b) } });
    // The same push again: a redelivery and a second delivery. Then a newer push.
    expect((await push(shas.b, 'delivery-b')).body.status).toBe('queued');
    expect((await push(shas.b, 'delivery-b2')).body.status).toBe('queued');
    expect((await push(shas.c)).body).toEqual({ status: 'queued', workflowId: id(shas.c) });
    const e = await sendWebhook(
      plainUrl,
      SECRET,
      'push',
      pushPayload({ repository: REPO, branch: 'main', sha: shas.e }),
    );
    expect(e.body).toEqual({ status: 'queued', workflowId: id(shas.e) });
    expect(Date.now() - t0).toBeLessThan(2000 + 4000); // one start time limit (plain's first try) + slack

    const files = fs
      .readdirSync(spoolDir)
      .filter((n) => n.endsWith('.json'))
      .sort();
    expect(files).toHaveLength(2);
    const entries = files.map(
      (f) =>
        JSON.parse(fs.readFileSync(path.join(spoolDir, f), 'utf8')) as { push: { sha: string }; deliveryId: string },
    );
    expect(entries.map((e) => e.push.sha)).toEqual([shas.b, shas.c]);
    expect(entries[0].deliveryId).toBe('delivery-b');
    for (const f of files) expect(fs.readFileSync(path.join(spoolDir, f), 'utf8')).not.toContain(SECRET);

    const metrics = await (await fetch(`${statusUrl}/metrics`)).text();
    expect(metrics).toMatch(/^conveyor_api_spool_depth 2$/m);
    expect(plain!.spool.depth()).toBe(1);
    expect(metrics).toMatch(/^conveyor_api_temporal_up 0$/m);
    expect(metrics).toMatch(/^conveyor_api_deliveries_total\{outcome="queued"\} 4$/m);

    // Let the drainer fail a few more times: still one line for the whole outage.
    await new Promise((r) => setTimeout(r, 2500));
    expect(logged('Temporal unreachable: verified pushes are spooled until it is back')).toBe(1);
    expect(logged('Temporal reachable again')).toBe(0);
  });

  it('Temporal back on the same port and database: each spooled push starts once, oldest first; recovery logged once', async () => {
    temporal = await startTemporalServer(server);
    await waitFor('the spool to drain', () => Promise.resolve(api.spool.depth() === 0), { timeoutMs: 30000 });
    await waitFor('the plain client to reconnect and drain', () => Promise.resolve(plain!.spool.depth() === 0), {
      timeoutMs: 30000,
    });
    expect(await runsOf(shas.e)).toBe(1);
    await plain!.close();

    expect(await runsOf(shas.a)).toBe(1);
    expect(await runsOf(shas.b)).toBe(1);
    expect(await runsOf(shas.c)).toBe(1);
    const [b, c] = await onServer((cl) =>
      Promise.all([cl.workflow.getHandle(id(shas.b)).describe(), cl.workflow.getHandle(id(shas.c)).describe()]),
    );
    expect(b.startTime.getTime()).toBeLessThanOrEqual(c.startTime.getTime());
    expect(b.memo).toMatchObject({ deliveryId: 'delivery-b' });
    expect(fs.readdirSync(spoolDir).filter((n) => n.endsWith('.json'))).toEqual([]);

    expect(logged('Temporal reachable again')).toBe(1);
    expect(logged('Temporal unreachable: verified pushes are spooled until it is back')).toBe(1);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    // A redelivery now finds the run the spool started.
    expect(await push(shas.b, 'delivery-b')).toEqual({
      status: 200,
      body: { status: 'existing', workflowId: id(shas.b) },
    });
    const metrics = await (await fetch(`${statusUrl}/metrics`)).text();
    // A start that timed out here may still have reached the server: its retry then says "already started".
    expect(metrics).toMatch(/^conveyor_api_runs_started_total\{source="spool"\} [12]$/m);
    expect(metrics).toMatch(/^conveyor_api_temporal_up 1$/m);
  });

  it('an API restart drains the spool an earlier instance left', async () => {
    await stopTemporal();
    const t0 = Date.now();
    // The API still believes Temporal is up: this start waits out its time limit, then spools.
    expect(await push(shas.d, 'delivery-d')).toEqual({
      status: 202,
      body: { status: 'queued', workflowId: id(shas.d) },
    });
    expect(Date.now() - t0).toBeLessThan(2000 + 1500);
    await api.close();
    expect(fs.readdirSync(spoolDir).filter((n) => n.endsWith('.json'))).toHaveLength(1);

    temporal = await startTemporalServer(server);
    api = startApi(); // a new process would do the same: open the spool, drain it
    await waitFor('the new instance to drain the spool', () => Promise.resolve(api.spool.depth() === 0), {
      timeoutMs: 30000,
    });
    expect(await runsOf(shas.d)).toBe(1);
    const d = await onServer((cl) => cl.workflow.getHandle(id(shas.d)).describe());
    expect(d.memo).toMatchObject({ deliveryId: 'delivery-d' });
  });
});

describe('webhook API with a Temporal that accepts connections and never answers', () => {
  let hole: net.Server;
  let sockets: net.Socket[];
  let api: Api;
  let url: string;
  let logs: { msg: string }[];

  beforeAll(async () => {
    sockets = [];
    hole = net.createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', () => r()));
    const port = (hole.address() as net.AddressInfo).port;
    const config = testConfig([{ name: REPO, cloneUrl: '/nonexistent/widget.git', steps: { unit: 'true' } }], {
      temporal: { address: `127.0.0.1:${port}`, namespace: 'default', taskQueue: `conveyor-${uid()}` },
      api: { spoolDir: tempDir('api-blackhole-spool'), startTimeoutMs: 1500 },
    });
    logs = [];
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => void logs.push(JSON.parse(line) as { msg: string }) },
    );
    api = createApi({ config, connect: () => connectClient(config, {}), logger, secret: SECRET });
    url = `http://127.0.0.1:${await listen(api.server, 0)}`;
  });

  afterAll(async () => {
    await api?.close();
    sockets.forEach((s) => s.destroy());
    await new Promise((r) => hole.close(r));
  });

  it('answers a push 202 queued within the start time limit, and later ones at once', async () => {
    let t0 = Date.now();
    const first = await sendWebhook(
      url,
      SECRET,
      'push',
      pushPayload({ repository: REPO, branch: 'main', sha: newSha() }),
    );
    expect(first.status).toBe(202);
    expect(first.body.status).toBe('queued');
    const firstMs = Date.now() - t0;
    expect(firstMs).toBeGreaterThanOrEqual(1400);
    expect(firstMs).toBeLessThan(3000);

    t0 = Date.now();
    const more = await Promise.all(
      [1, 2, 3].map(() =>
        sendWebhook(url, SECRET, 'push', pushPayload({ repository: REPO, branch: 'main', sha: newSha() })),
      ),
    );
    expect(more.map((r) => r.body.status)).toEqual(['queued', 'queued', 'queued']);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(api.spool.depth()).toBe(4);
    expect(logs.filter((l) => l.msg.startsWith('Temporal unreachable')).length).toBe(1);

    t0 = Date.now();
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});
