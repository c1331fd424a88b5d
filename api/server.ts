// The webhook API's HTTP servers: routing and answering only. Two listeners, because they face
// different people: the webhook listener faces the internet (GitHub) and serves only
// POST /webhooks/github (and POST /webhooks/slack when ChatOps is configured) plus /healthz and /readyz for load balancers; the status listener
// (api.statusHost, loopback by default) serves /runs/<id> and /metrics to this machine's
// operators and scrapers. With a bearer token configured (api.statusTokenEnv) both require it
// for /runs and /metrics, and the webhook listener serves them too, for a deployment that
// exposes one port behind a proxy. The webhook listener's memory is bounded by intake-guard.ts
// (connections, unverified body bytes) and Node's header/request timeouts.
// Each concern has its own module: webhook.ts (POST /webhooks/github), slack/ (POST /webhooks/slack), status-routes.ts
// (healthz, readyz, runs, metrics), temporal-gate.ts (time-limited Temporal calls, outage
// detection), spool.ts and spool-drainer.ts (pushes kept while Temporal is away), metrics.ts.
import http from 'node:http';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type pino from 'pino';
import type { ConveyorConfig } from '../config/conveyor';
import { bearerTokenMatches } from './bearer-token';
import { createIntakeGuard, type IntakeGuard } from './intake-guard';
import { createMetrics, type ApiMetrics, type DeliveryOutcome } from './metrics';
import { HttpError } from './read-body';
import { header, json, send, type Reply } from './reply';
import { createRecentStarts, type RecentStartsOptions } from './recent-starts';
import { openSpool, type Spool } from './spool';
import { createDrainer, type Drainer } from './spool-drainer';
import { createStatusRoutes } from './status-routes';
import { createTemporalGate, type TemporalGate } from './temporal-gate';
import { createSlackHandler } from './slack/slack-handler';
import { createWebhookHandler } from './webhook';

export type IntakeSettings = Pick<
  ConveyorConfig['api'],
  'maxConnections' | 'maxBufferedBytes' | 'headersTimeoutMs' | 'requestTimeoutMs'
>;

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
  /** Slack's signing secret (env var chat.slack.signingSecretEnv): verifies slash commands and buttons. */
  slackSecret?: string;
  /** Slack commands: answer in the request within this, later on response_url (default 2500 ms). */
  slackAckWithinMs?: number;
  /** The bearer token for /runs and /metrics (the value of the env var api.statusTokenEnv names).
   * Unset: they are served on the status listener only, without authentication. */
  statusToken?: string;
  /** Default: config api.maxBodyBytes. */
  maxBodyBytes?: number;
  /** Default: config api.spoolDir, relative to the config file. */
  spoolDir?: string;
  /** Default: config api.startTimeoutMs. */
  startTimeoutMs?: number;
  /** Default: config api (maxConnections, maxBufferedBytes, headersTimeoutMs, requestTimeoutMs). */
  intake?: Partial<IntakeSettings>;
  /** The spool drainer's retry backoff (default 500 ms doubling to 15 s). */
  drainBackoffMs?: { initial: number; max: number };
  /** A failing owned connection older than this is rebuilt (default 10 s). */
  reconnectAfterMs?: number;
  /** How long and how many runs known to exist answer duplicate deliveries (recent-starts.ts). */
  recentStarts?: RecentStartsOptions;
}

export interface Api {
  /** The webhook listener: POST /webhooks/github, /healthz, /readyz. */
  server: http.Server;
  /** The status listener: /runs/<id>, /metrics, /healthz, /readyz. */
  statusServer: http.Server;
  intake: IntakeGuard;
  spool: Spool;
  gate: TemporalGate;
  drainer: Drainer;
  metrics: ApiMetrics;
  /** Stops accepting on both listeners, waits for the drainer's running pass, closes an owned connection. */
  close(): Promise<void>;
}

/** The API's webhook listener; closing it stops the rest (the status listener too). */
export function createApiServer(deps: ApiDeps): http.Server {
  return createApi(deps).server;
}

type Listener = 'webhook' | 'status';

/** How often Node checks header and request timeouts (its default, 30 s, lets slow senders linger). */
const TIMEOUT_CHECK_MS = 1000;

export function createApi(deps: ApiDeps): Api {
  const { config, logger } = deps;
  const limits: IntakeSettings = {
    maxConnections: deps.intake?.maxConnections ?? config.api.maxConnections,
    maxBufferedBytes: deps.intake?.maxBufferedBytes ?? config.api.maxBufferedBytes,
    headersTimeoutMs: deps.intake?.headersTimeoutMs ?? config.api.headersTimeoutMs,
    requestTimeoutMs: deps.intake?.requestTimeoutMs ?? config.api.requestTimeoutMs,
  };
  const startTimeoutMs = deps.startTimeoutMs ?? config.api.startTimeoutMs;
  const metrics = createMetrics();
  const spoolDir = path.resolve(path.dirname(config.file), deps.spoolDir ?? config.api.spoolDir);
  const spool = openSpool(spoolDir, (depth) => metrics.setSpoolDepth(depth));
  const gate = createTemporalGate({
    client: deps.client,
    connect: deps.connect,
    taskQueue: config.temporal.taskQueue,
    address: config.temporal.address,
    startTimeoutMs,
    logger,
    metrics,
    rebuildAfterMs: deps.reconnectAfterMs,
    recent: createRecentStarts(deps.recentStarts),
  });
  const drainer = createDrainer({
    config: () => config,
    spool,
    gate,
    logger,
    metrics,
    initialBackoffMs: deps.drainBackoffMs?.initial,
    maxBackoffMs: deps.drainBackoffMs?.max,
  });
  const status = createStatusRoutes({
    gate,
    spool,
    metrics,
    taskQueue: config.temporal.taskQueue,
    queryTimeoutMs: startTimeoutMs,
  });
  if (spool.depth() > 0) logger.info({ dir: spoolDir, entries: spool.depth() }, 'spooled pushes from an earlier run');

  const server = http.createServer({
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: TIMEOUT_CHECK_MS,
  });
  const intake = createIntakeGuard(server, limits);
  metrics.setIntakeSource(() => intake.stats());
  // The response of each request in progress, so a verified delivery can be protected by it.
  const responses = new WeakMap<http.IncomingMessage, http.ServerResponse>();
  const webhook = createWebhookHandler({
    config,
    secret: deps.secret,
    maxBodyBytes: deps.maxBodyBytes ?? config.api.maxBodyBytes,
    gate,
    spool,
    drainer,
    logger,
    budget: intake,
    verified: (req) => {
      const res = responses.get(req);
      if (res) intake.protect(req, res);
    },
  });

  const slack = createSlackHandler({
    config,
    secret: deps.slackSecret,
    maxBodyBytes: deps.maxBodyBytes ?? config.api.maxBodyBytes,
    gate,
    logger: logger.child({ intake: 'slack' }),
    budget: intake,
    verified: (req) => {
      const res = responses.get(req);
      if (res) intake.protect(req, res);
    },
    ackWithinMs: deps.slackAckWithinMs,
  });

  /** /runs and /metrics: the token when one is set; else the status listener only. */
  function statusAccess(req: http.IncomingMessage, listener: Listener): Reply | undefined {
    if (deps.statusToken) {
      if (bearerTokenMatches(header(req, 'authorization'), deps.statusToken)) return undefined;
      return {
        status: 401,
        body: { error: 'missing or wrong bearer token: send Authorization: Bearer <the token in api.statusTokenEnv>' },
        headers: { 'www-authenticate': 'Bearer realm="conveyor"' },
      };
    }
    if (listener === 'status') return undefined;
    return json(404, {
      error:
        '/runs and /metrics are not served on the webhook listener: read them on the status listener ' +
        '(api.statusHost:api.statusPort, loopback by default), or set api.statusTokenEnv to serve them ' +
        'here with a bearer token',
    });
  }

  async function route(req: http.IncomingMessage, listener: Listener): Promise<Reply> {
    const { pathname } = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    const only = (allowed: string, fn: () => Reply | Promise<Reply>) =>
      method === allowed ? fn() : json(405, { error: `method ${method} not allowed; use ${allowed}` });
    if (pathname === '/webhooks/github') {
      if (listener === 'status') {
        return json(404, { error: 'webhooks are received on the webhook listener (--port), not the status listener' });
      }
      return only('POST', () => webhookReply(req));
    }
    if (pathname === '/webhooks/slack') {
      if (listener === 'status') {
        return json(404, { error: 'Slack requests are received on the webhook listener (--port)' });
      }
      return only('POST', () => webhookReply(req, slack));
    }
    if (pathname === '/healthz') return only('GET', () => status.healthz());
    if (pathname === '/readyz') return only('GET', () => status.readyz());
    if (pathname === '/metrics' || pathname.startsWith('/runs/')) {
      const denied = statusAccess(req, listener);
      if (denied) return denied;
      if (pathname === '/metrics') return only('GET', () => status.metrics());
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

  async function webhookReply(
    req: http.IncomingMessage,
    handle: (req: http.IncomingMessage) => Promise<Reply> = webhook,
  ): Promise<Reply> {
    try {
      return await handle(req);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      return {
        ...json(err.status, { error: err.message }, OUTCOME_OF[err.status] ?? 'failed'),
        ...(err.status === 503 ? { headers: { 'retry-after': '5' } } : {}),
      };
    }
  }

  const handler = (listener: Listener) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    responses.set(req, res);
    void route(req, listener)
      .catch((err: unknown) => {
        logger.error({ err, method: req.method, url: req.url }, 'request failed');
        return json(500, { error: 'internal error' }, req.url?.startsWith('/webhooks/') ? 'failed' : undefined);
      })
      .then((reply) => {
        if (reply.outcome) metrics.delivery(reply.outcome);
        // A body left unread (refused early, or too large) is not read on: the connection closes.
        // The webhook listener closes every connection after its answer: a delivery is one request,
        // and an idle kept-alive connection would only age towards being dropped at the cap.
        send(res, reply, listener === 'webhook' || !req.complete);
      });
  };
  server.on('request', handler('webhook'));

  // Loopback (by default) and read-only: a small fixed connection cap is enough.
  const statusServer = http.createServer(
    { headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: TIMEOUT_CHECK_MS },
    handler('status'),
  );
  statusServer.maxConnections = 64;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await Promise.all(
        [server, statusServer]
          .filter((s) => s.listening)
          .map((s) => {
            const closed = new Promise<void>((resolve) => s.close(() => resolve()));
            s.closeIdleConnections();
            return closed;
          }),
      );
      await drainer.stop();
      await gate.close();
    })());
  server.once('close', () => void close());

  return { server, statusServer, intake, spool, gate, drainer, metrics, close };
}

const OUTCOME_OF: Record<number, DeliveryOutcome> = {
  400: 'bad_request',
  401: 'unauthorized',
  413: 'too_large',
  415: 'unsupported_media_type',
  503: 'overloaded',
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
