// Each bound of the webhook listener on its own, small and deterministic (the many-sender load
// with memory figures is api-slow-senders.test.ts): a sender too slow with its headers or its
// body is answered 408 and disconnected within the configured time (Node's defaults would keep it
// for minutes); past the connection cap the OLDEST unverified connection is dropped and a real
// delivery still gets in; past the unverified-body budget the oldest body is dropped, again
// letting a real delivery in.
import crypto from 'node:crypto';
import net from 'node:net';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { createApi, listen, type Api, type IntakeSettings } from '../../api/server';
import { waitFor } from '../../cli/local-stack/services';
import { pushPayload, sendWebhook } from '../../cli/webhook-client';
import type { ConveyorConfig } from '../../config/conveyor';
import { clientFor, tempDir, testConfig } from '../helpers/stack';

const SECRET = 'api-intake-limits-secret';
const REPO = 'acme/widget';

interface Raw {
  socket: net.Socket;
  received: () => string;
  closed: Promise<number>;
}

/** A raw connection that sends `first` and then whatever the test writes. */
function raw(url: string, first: string): Raw {
  const target = new URL(url);
  const socket = net.connect(Number(target.port), target.hostname);
  let received = '';
  const t0 = Date.now();
  socket.on('data', (d: Buffer) => (received += d.toString()));
  socket.on('error', () => undefined);
  socket.write(first);
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - t0)));
  return { socket, received: () => received, closed };
}

const headers = (extra: string) =>
  'POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
  `X-GitHub-Event: push\r\nX-GitHub-Delivery: ${crypto.randomUUID()}\r\n` +
  `X-Hub-Signature-256: sha256=${'0'.repeat(64)}\r\n${extra}`;

describe('webhook listener limits', () => {
  let config: ConveyorConfig;
  let client: Client;
  const apis: Api[] = [];
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    config = testConfig([{ name: REPO, cloneUrl: '/nonexistent/widget.git', steps: { unit: 'true' } }]);
    client = await clientFor(config);
  });

  afterAll(async () => {
    sockets.forEach((s) => s.destroy());
    for (const a of apis) await a.close();
    await client?.connection.close();
  });

  async function start(intake: Partial<IntakeSettings>, maxBodyBytes?: number) {
    const api = createApi({
      config,
      client,
      logger: pino({ level: 'silent' }),
      secret: SECRET,
      intake,
      maxBodyBytes,
      spoolDir: tempDir('api-intake-spool'),
    });
    apis.push(api);
    return { api, url: `http://127.0.0.1:${await listen(api.server, 0)}` };
  }

  const realPush = (url: string) =>
    sendWebhook(
      url,
      SECRET,
      'push',
      pushPayload({ repository: REPO, branch: 'main', sha: crypto.randomBytes(20).toString('hex') }),
    );

  it('headers or a body too slow: 408 and disconnected within the configured time', async () => {
    const { url } = await start({ headersTimeoutMs: 1000, requestTimeoutMs: 2000 });
    const slowHeaders = raw(url, 'POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const slowBody = raw(url, headers('Content-Length: 1000\r\n\r\n{"ref":'));
    sockets.push(slowHeaders.socket, slowBody.socket);
    const drip = setInterval(() => {
      if (!slowHeaders.socket.destroyed) slowHeaders.socket.write(`X-Drip-${Date.now()}: 1\r\n`);
      if (!slowBody.socket.destroyed) slowBody.socket.write('    ');
    }, 300);
    try {
      const [headersMs, bodyMs] = await Promise.all([slowHeaders.closed, slowBody.closed]);
      expect(slowHeaders.received()).toMatch(/^HTTP\/1\.1 408/);
      expect(slowBody.received()).toMatch(/^HTTP\/1\.1 408/);
      // The timeout plus Node's check interval (1 s here; 30 s by default).
      expect(headersMs).toBeGreaterThanOrEqual(900);
      expect(headersMs).toBeLessThan(3500);
      expect(bodyMs).toBeGreaterThanOrEqual(1900);
      expect(bodyMs).toBeLessThan(4500);
    } finally {
      clearInterval(drip);
    }
  });

  it('past the connection cap the oldest unverified connection is dropped, and a real delivery gets in', async () => {
    const { api, url } = await start({ maxConnections: 4 });
    const idle: Raw[] = [];
    for (let i = 0; i < 4; i++) {
      idle.push(raw(url, 'POST /webhooks/github HTTP/1.1\r\n'));
      sockets.push(idle[i].socket);
      await waitFor('the connection to be counted', () => Promise.resolve(api.intake.stats().connections === i + 1));
    }
    const res = await realPush(url);
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('started');
    await idle[0].closed;
    expect(idle.slice(1).map((c) => c.socket.destroyed)).toEqual([false, false, false]);
    expect(api.intake.stats().dropped.connection_limit).toBe(1);
    expect(api.intake.stats().connections).toBeLessThanOrEqual(4);
  });

  it('past the budget of unverified bytes the oldest body is dropped, and a real delivery gets in', async () => {
    const budget = 64 * 1024;
    const { api, url } = await start({ maxBufferedBytes: budget }, budget);
    const half = Buffer.alloc(28 * 1024, 0x20).toString();
    const first = raw(url, headers(`Content-Length: ${budget - 1024}\r\n\r\n${half}`));
    sockets.push(first.socket);
    await waitFor('the first body to be held', () => Promise.resolve(api.intake.stats().bufferedBytes >= half.length));
    const second = raw(url, headers(`Content-Length: ${budget - 1024}\r\n\r\n${half}`));
    sockets.push(second.socket);
    await waitFor('both bodies to be held', () => Promise.resolve(api.intake.stats().bufferedBytes >= 2 * half.length));
    expect(api.intake.stats().dropped.buffer_limit).toBe(0);

    // A third body that does not fit beside them: the oldest goes.
    const third = raw(url, headers(`Content-Length: ${budget - 1024}\r\n\r\n${half}`));
    sockets.push(third.socket);
    await first.closed;
    expect(second.socket.destroyed).toBe(false);
    expect(api.intake.stats().dropped.buffer_limit).toBe(1);
    expect(api.intake.stats().bufferedBytes).toBeLessThanOrEqual(budget);

    // A real delivery (a few hundred bytes) finds room the same way.
    const res = await realPush(url);
    expect(res.status).toBe(202);
    expect(api.intake.stats().bufferedBytes).toBeLessThanOrEqual(budget);
  });
});
