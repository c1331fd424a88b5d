// What a route answers, kept apart from writing it, so every answer (and its metric) goes
// through one place in server.ts.
import type http from 'node:http';
import type { DeliveryOutcome } from './metrics';

export interface Reply {
  status: number;
  body: unknown;
  /** Plain text instead of JSON (the Prometheus exposition). */
  text?: { contentType: string };
  /** Set on webhook answers: counted in conveyor_api_deliveries_total. */
  outcome?: DeliveryOutcome;
  /** Extra response headers (WWW-Authenticate, Retry-After). */
  headers?: Record<string, string>;
}

export function json(status: number, body: unknown, outcome?: DeliveryOutcome): Reply {
  return { status, body, outcome };
}

export function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Writes the reply; `close` ends the connection after it (the request body was not read). */
export function send(res: http.ServerResponse, reply: Reply, close = false): void {
  if (res.headersSent) return;
  const text = reply.text ? String(reply.body) : JSON.stringify(reply.body) + '\n';
  res.writeHead(reply.status, {
    'content-type': reply.text?.contentType ?? 'application/json',
    'content-length': Buffer.byteLength(text),
    ...reply.headers,
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}
