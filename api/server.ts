// The webhook API: POST /webhooks/github (signature verified over the raw bytes with
// @octokit/webhooks), GET /healthz. It starts workflows and never waits for their work, so it
// answers well within GitHub's 10-second delivery timeout.
import http from 'node:http';
import type { Client } from '@temporalio/client';
import type pino from 'pino';
import type { ConveyorConfig } from '../config/conveyor';
import { createWebhooks } from './octokit';
import { decidePush } from './github-push';
import { HttpError, readBody } from './read-body';
import { startPipeline } from './start-pipeline';

export interface ApiDeps {
  config: ConveyorConfig;
  client: Client;
  logger: pino.Logger;
  /** The webhook secret; undefined only with --insecure-dev, when signatures are not checked. */
  secret: string | undefined;
  maxBodyBytes?: number;
}

export const DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024; // GitHub caps payloads at 25 MB

export function createApiServer(deps: ApiDeps): http.Server {
  const webhooks = deps.secret ? createWebhooks(deps.secret) : undefined;
  const limit = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;

  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = `${req.method} ${url.pathname}`;
    let handled: Promise<void>;
    if (route === 'GET /healthz') handled = Promise.resolve(send(res, 200, { status: 'ok' }));
    else if (route === 'POST /webhooks/github') handled = onWebhook(req, res);
    else if (url.pathname === '/webhooks/github' || url.pathname === '/healthz')
      handled = Promise.resolve(send(res, 405, { error: `method ${req.method} not allowed` }));
    else handled = Promise.resolve(send(res, 404, { error: 'not found' }));
    handled.catch((err: unknown) => {
      if (err instanceof HttpError) {
        send(res, err.status, { error: err.message });
        if (err.status === 413) req.destroy();
        return;
      }
      deps.logger.error({ err, route }, 'request failed');
      send(res, 500, { error: 'internal error' });
    });
  });

  async function onWebhook(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const event = header(req, 'x-github-event');
    const delivery = header(req, 'x-github-delivery');
    const signature = header(req, 'x-hub-signature-256');
    const log = deps.logger.child({ delivery, event });
    if (!event || !delivery) throw new HttpError(400, 'missing X-GitHub-Event or X-GitHub-Delivery header');
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json') throw new HttpError(415, 'content type must be application/json');
    const body = await readBody(req, limit);
    if (webhooks) {
      // Nothing of an unverified body is logged.
      if (!signature) throw new HttpError(401, 'missing X-Hub-Signature-256');
      const ok = await (await webhooks).verify(body.toString('utf8'), signature).catch(() => false);
      if (!ok) {
        log.warn('signature mismatch');
        throw new HttpError(401, 'signature does not match');
      }
    }
    let payload: unknown;
    try {
      payload = JSON.parse(body.toString('utf8'));
    } catch {
      throw new HttpError(400, 'body is not valid JSON');
    }
    if (!payload || typeof payload !== 'object') throw new HttpError(400, 'body must be a JSON object');

    if (event === 'ping') {
      send(res, 200, { status: 'pong', hookId: (payload as { hook_id?: number }).hook_id ?? null });
      return;
    }
    if (event !== 'push') {
      send(res, 202, { status: 'ignored', reason: `ignored: event ${event} is not handled` });
      return;
    }
    const decision = decidePush(deps.config, payload, delivery);
    if (decision.action === 'ignore') {
      log.info({ reason: decision.reason }, 'push ignored');
      send(res, 202, { status: 'ignored', reason: decision.reason });
      return;
    }
    const outcome = await startPipeline(deps.client, decision.input, deps.config.temporal.taskQueue);
    log.info({ workflowId: outcome.workflowId, started: outcome.started }, 'push handled');
    send(res, outcome.started ? 202 : 200, {
      status: outcome.started ? 'started' : 'existing',
      workflowId: outcome.workflowId,
    });
  }
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

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
