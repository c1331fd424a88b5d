// The webhook API's HTTP server: routing and answering only. Each concern has its own module:
// webhook.ts (POST /webhooks/github), status-routes.ts (healthz, readyz, runs, metrics),
// temporal-gate.ts (time-limited Temporal calls, outage detection), spool.ts and
// spool-drainer.ts (pushes kept while Temporal is away), metrics.ts.
import http from 'node:http';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type pino from 'pino';
import type { ConveyorConfig } from '../config/conveyor';
import { createMetrics, type ApiMetrics, type DeliveryOutcome } from './metrics';
import { HttpError } from './read-body';
import { json, send, type Reply } from './reply';
import { openSpool, type Spool } from './spool';
import { createDrainer, type Drainer } from './spool-drainer';
import { createStatusRoutes } from './status-routes';
import { createTemporalGate, type TemporalGate } from './temporal-gate';
import { createWebhookHandler } from './webhook';

export interface ApiDeps {
  config: ConveyorConfig;
  /** A Temporal client the caller owns, and closes once `Api.close()` has resolved... */
  client?: Client;
  /** ...or how to connect: the API then owns the connection, rebuilds it when it stays down,
   * and starts (spooling) even while Temporal is unreachable. */
  connect?: () => Promise<Client>;
  logger: pino.Logger;
  /** The webhook secret; undefined only with --insecure-dev, when signatures are not checked. */
  secret: string | undefined;
  /** Default: config api.maxBodyBytes. */
  maxBodyBytes?: number;
  /** Default: config api.spoolDir, relative to the config file. */
  spoolDir?: string;
  /** Default: config api.startTimeoutMs. */
  startTimeoutMs?: number;
  /** The spool drainer's retry backoff (default 500 ms doubling to 15 s). */
  drainBackoffMs?: { initial: number; max: number };
  /** A failing owned connection older than this is rebuilt (default 10 s). */
  reconnectAfterMs?: number;
}

export interface Api {
  server: http.Server;
  spool: Spool;
  gate: TemporalGate;
  drainer: Drainer;
  metrics: ApiMetrics;
  /** Stops accepting, waits for the drainer's running pass, closes an owned connection. */
  close(): Promise<void>;
}

/** The API as one HTTP server; closing the server stops the rest. */
export function createApiServer(deps: ApiDeps): http.Server {
  return createApi(deps).server;
}

export function createApi(deps: ApiDeps): Api {
  const { config, logger } = deps;
  const metrics = createMetrics();
  const spoolDir = path.resolve(path.dirname(config.file), deps.spoolDir ?? config.api.spoolDir);
  const spool = openSpool(spoolDir, (depth) => metrics.setSpoolDepth(depth));
  const gate = createTemporalGate({
    client: deps.client,
    connect: deps.connect,
    taskQueue: config.temporal.taskQueue,
    address: config.temporal.address,
    startTimeoutMs: deps.startTimeoutMs ?? config.api.startTimeoutMs,
    logger,
    metrics,
    rebuildAfterMs: deps.reconnectAfterMs,
  });
  const drainer = createDrainer({
    spool,
    gate,
    logger,
    metrics,
    initialBackoffMs: deps.drainBackoffMs?.initial,
    maxBackoffMs: deps.drainBackoffMs?.max,
  });
  const webhook = createWebhookHandler({
    config,
    secret: deps.secret,
    maxBodyBytes: deps.maxBodyBytes ?? config.api.maxBodyBytes,
    gate,
    spool,
    drainer,
    logger,
  });
  const status = createStatusRoutes({ gate, spool, metrics });
  if (spool.depth() > 0) logger.info({ dir: spoolDir, entries: spool.depth() }, 'spooled pushes from an earlier run');

  async function route(req: http.IncomingMessage): Promise<Reply> {
    const { pathname } = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    const only = (allowed: string, fn: () => Reply | Promise<Reply>) =>
      method === allowed ? fn() : json(405, { error: `method ${method} not allowed; use ${allowed}` });
    if (pathname === '/webhooks/github') return only('POST', () => webhookReply(req));
    if (pathname === '/healthz') return only('GET', () => status.healthz());
    if (pathname === '/readyz') return only('GET', () => status.readyz());
    if (pathname === '/metrics') return only('GET', () => status.metrics());
    if (pathname.startsWith('/runs/')) {
      let id: string;
      try {
        id = decodeURIComponent(pathname.slice('/runs/'.length));
      } catch {
        return json(400, { error: 'malformed workflow ID' });
      }
      return only('GET', () => status.run(id));
    }
    return json(404, { error: 'not found' });
  }

  async function webhookReply(req: http.IncomingMessage): Promise<Reply> {
    try {
      return await webhook(req);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      return json(err.status, { error: err.message }, OUTCOME_OF[err.status] ?? 'failed');
    }
  }

  const server = http.createServer((req, res) => {
    void route(req)
      .catch((err: unknown) => {
        logger.error({ err, method: req.method, url: req.url }, 'request failed');
        return json(500, { error: 'internal error' }, req.url?.startsWith('/webhooks/') ? 'failed' : undefined);
      })
      .then((reply) => {
        if (reply.outcome) metrics.delivery(reply.outcome);
        // A body left unread (refused early, or too large) is not read on: the connection closes.
        send(res, reply, !req.complete);
      });
  });
  // A slow client must not hold a connection for long; GitHub sends a delivery in one go.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
      await drainer.stop();
      await gate.close();
    })());
  server.once('close', () => void close());

  return { server, spool, gate, drainer, metrics, close };
}

const OUTCOME_OF: Record<number, DeliveryOutcome> = {
  400: 'bad_request',
  401: 'unauthorized',
  413: 'too_large',
  415: 'unsupported_media_type',
};

export function listen(server: http.Server, port: number, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}
