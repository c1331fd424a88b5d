// POST /webhooks/github: cheap checks first (headers, content type, size), then the signature over
// the exact bytes received, then what the push means. A verified push either starts its pipeline
// within the start time limit or is spooled durably before it is answered: GitHub does not
// redeliver by itself, so an answer of 202 must never lose the push. Nothing of a body is logged
// before its signature is verified, and the bytes of a body count against the listener's budget
// of unverified bytes (intake-guard.ts) until then. Every event GitHub sends is accepted (202
// ignored, unless it is a push or a ping): an organisation hook subscribes to all of them.
import { isUtf8 } from 'node:buffer';
import type http from 'node:http';
import type { Webhooks } from '@octokit/webhooks';
import type pino from 'pino';
import { pipelineId } from '../common/ids';
import type { PipelineInput } from '../common/types';
import type { ConveyorConfig } from '../config/conveyor';
import { decidePush, type PushFacts } from './github-push';
import { createWebhooks } from './octokit';
import { HttpError, readBody, type BodyBudget } from './read-body';
import { header, json, type Reply } from './reply';
import type { Spool } from './spool';
import type { Drainer } from './spool-drainer';
import { isUnavailable, type TemporalGate } from './temporal-gate';

export interface WebhookDeps {
  config: ConveyorConfig;
  /** Undefined only with --insecure-dev, when signatures are not checked. */
  secret: string | undefined;
  maxBodyBytes: number;
  gate: TemporalGate;
  spool: Spool;
  drainer: Drainer;
  logger: pino.Logger;
  /** The listener's budget of unverified body bytes; `release` once the signature is checked. */
  budget?: BodyBudget & { release(req: http.IncomingMessage): void };
  /** Called once the signature is verified: the request may no longer be dropped as a slow sender. */
  verified?: (req: http.IncomingMessage) => void;
}

const DELIVERY_ID = /^[A-Za-z0-9._-]{1,128}$/;
/** GitHub's event names: lowercase words joined by underscores, digits included (projects_v2_item). */
const EVENT = /^[a-z][a-z0-9_]{0,63}$/;

export function createWebhookHandler(deps: WebhookDeps): (req: http.IncomingMessage) => Promise<Reply> {
  let webhooks: Promise<Webhooks> | undefined;
  if (deps.secret) {
    webhooks = createWebhooks(deps.secret);
    webhooks.catch(() => undefined); // awaited per request; an import failure answers 500 there
  }

  return async function handleWebhook(req) {
    const event = header(req, 'x-github-event');
    const delivery = header(req, 'x-github-delivery');
    if (!event || !delivery) {
      throw new HttpError(400, 'missing X-GitHub-Event or X-GitHub-Delivery header: send GitHub webhooks only');
    }
    if (!EVENT.test(event)) {
      throw new HttpError(400, 'malformed X-GitHub-Event header: expected a GitHub event name such as push');
    }
    if (!DELIVERY_ID.test(delivery)) {
      throw new HttpError(400, 'malformed X-GitHub-Delivery header: expected the delivery GUID GitHub sends');
    }
    const log = deps.logger.child({ delivery, event });
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json') {
      throw new HttpError(
        415,
        `content type ${type || '(none)'} is not accepted: set the webhook's content type to application/json on GitHub`,
      );
    }
    let text: string;
    try {
      text = await verifiedBody(req, log);
    } finally {
      deps.budget?.release(req);
    }
    deps.verified?.(req);
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      throw new HttpError(400, 'body is not valid JSON');
    }
    if (!payload || typeof payload !== 'object' || Array.isArray(payload)) {
      throw new HttpError(400, 'body must be a JSON object');
    }

    if (event === 'ping') {
      const hookId = (payload as { hook_id?: unknown }).hook_id;
      log.info({ hookId }, 'ping');
      return json(200, { status: 'pong', hookId: typeof hookId === 'number' ? hookId : null }, 'pong');
    }
    if (event !== 'push') {
      return json(202, { status: 'ignored', reason: `ignored: event ${event} is not handled` }, 'ignored');
    }
    const decision = decidePush(deps.config, payload, delivery);
    if (decision.action === 'reject') {
      log.warn({ reason: decision.reason }, 'signed push refused: malformed');
      throw new HttpError(400, decision.reason);
    }
    if (decision.action === 'ignore') {
      log.info({ reason: decision.reason }, 'push ignored');
      return json(202, { status: 'ignored', reason: decision.reason }, 'ignored');
    }
    return accept(decision.input, decision.facts, delivery, log);
  };

  /** The body, read within the limits, as text whose signature matches (or --insecure-dev). */
  async function verifiedBody(req: http.IncomingMessage, log: pino.Logger): Promise<string> {
    const body = await readBody(req, deps.maxBodyBytes, deps.budget);
    if (!isUtf8(body)) throw new HttpError(400, 'body is not UTF-8 JSON');
    // Valid UTF-8 decodes losslessly, so the signature below is checked over the exact bytes.
    const text = body.toString('utf8');
    if (webhooks) {
      const signature = header(req, 'x-hub-signature-256');
      if (!signature) throw new HttpError(401, 'missing X-Hub-Signature-256: set the webhook secret on GitHub');
      const ok = await (await webhooks).verify(text, signature).catch(() => false);
      if (!ok) {
        log.warn('webhook signature does not match: refused');
        throw new HttpError(401, 'signature does not match: check the webhook secret');
      }
    }
    return text;
  }

  async function accept(input: PipelineInput, facts: PushFacts, delivery: string, log: pino.Logger): Promise<Reply> {
    const workflowId = pipelineId(input.repository.name, input.branch, input.sha);
    // A duplicate of a push whose run this process has seen exist: the answer Temporal would give,
    // without asking it (recent-starts.ts), also during an outage: nothing needs starting.
    if (deps.gate.known(workflowId)) {
      log.info({ workflowId, started: false }, 'push handled');
      return json(200, { status: 'existing', workflowId }, 'existing');
    }
    // Known outage: answer at once. Spooled pushes waiting: queue behind them, so runs start in
    // the order the pushes came.
    if (!deps.gate.up || deps.spool.depth() > 0) return queue(facts, delivery, workflowId, log);
    let outcome;
    try {
      outcome = await deps.gate.start(input, 'webhook');
    } catch (err) {
      if (!isUnavailable(err)) {
        log.error({ workflowId, err: (err as Error).message }, 'Temporal refused the start; push spooled');
      }
      return queue(facts, delivery, workflowId, log);
    }
    log.info({ workflowId, started: outcome.started }, 'push handled');
    return outcome.started
      ? json(202, { status: 'started', workflowId }, 'started')
      : json(200, { status: 'existing', workflowId }, 'existing');
  }

  /** Spools the push's facts only: the drainer decides again with the config current then. */
  async function queue(push: PushFacts, delivery: string, workflowId: string, log: pino.Logger): Promise<Reply> {
    try {
      await deps.spool.put({ deliveryId: delivery, receivedAt: new Date().toISOString(), push });
    } catch (err) {
      log.error({ workflowId, err: (err as Error).message, dir: deps.spool.dir }, 'push could not be spooled');
      return json(
        503,
        { error: 'Temporal is unavailable and the push could not be queued; redeliver it later' },
        'failed',
      );
    }
    deps.drainer.kick();
    log.info({ workflowId }, 'push queued in the spool');
    return json(202, { status: 'queued', workflowId }, 'queued');
  }
}
