// A stand-in for Slack on 127.0.0.1 (the real one is unreachable here), shaped as Slack documents
// it: the Web API's chat.postMessage (Bearer token, JSON answer `{ ok, ts, channel }`, threads by
// `thread_ts`), incoming webhooks (`/hooks/<name>`, answer `ok`), and response_url endpoints
// (`/response/<name>`). Records every request (never the token: only whether it matched), and can
// answer chosen requests with a rate limit (429 Retry-After) first.
import http from 'node:http';
import { listen } from '../../api/server';

export interface SlackRequest {
  method: string;
  path: string;
  /** True when a Bearer token came and it was the expected one. */
  tokenMatches?: boolean;
  body: Record<string, unknown>;
  at: number;
  /** What this stand-in answered. */
  status?: number;
  /** The `ts` given to a posted message. */
  ts?: string;
}

export interface FakeSlack {
  url: string;
  requests: SlackRequest[];
  /** The next `times` requests matching `when` get a 429 with Retry-After first. */
  rateLimit(when: (r: SlackRequest) => boolean, retryAfterSeconds: number, times?: number): void;
  close(): Promise<void>;
}

export async function startFakeSlack(opts: { botToken: string }): Promise<FakeSlack> {
  const requests: SlackRequest[] = [];
  const limits: { when: (r: SlackRequest) => boolean; retryAfterSeconds: number; left: number }[] = [];
  let ts = 1_700_000_000;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        /* recorded empty */
      }
      const auth = req.headers.authorization;
      const record: SlackRequest = {
        method: req.method ?? '',
        path: (req.url ?? '/').split('?')[0],
        ...(auth ? { tokenMatches: auth === `Bearer ${opts.botToken}` } : {}),
        body,
        at: Date.now(),
      };
      requests.push(record);
      const reply = (status: number, data: unknown, headers: Record<string, string> = {}) => {
        record.status = status;
        const text = typeof data === 'string' ? data : JSON.stringify(data);
        res.writeHead(status, {
          'content-type': typeof data === 'string' ? 'text/plain' : 'application/json; charset=utf-8',
          ...headers,
        });
        res.end(text);
      };
      const limit = limits.find((l) => l.left > 0 && l.when(record));
      if (limit) {
        limit.left -= 1;
        return reply(429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(limit.retryAfterSeconds) });
      }
      if (req.method !== 'POST') return reply(405, 'method not allowed');
      if (record.path === '/api/chat.postMessage') {
        if (!record.tokenMatches) return reply(200, { ok: false, error: 'invalid_auth' });
        if (typeof body.channel !== 'string') return reply(200, { ok: false, error: 'channel_not_found' });
        record.ts = `${ts++}.000100`;
        return reply(200, { ok: true, channel: body.channel, ts: record.ts, message: { text: body.text } });
      }
      if (record.path.startsWith('/hooks/')) {
        return typeof body.text === 'string' ? reply(200, 'ok') : reply(400, 'no_text');
      }
      if (record.path.startsWith('/response/')) return reply(200, { ok: true });
      reply(404, { ok: false, error: 'unknown_method' });
    });
  });
  const port = await listen(server, 0);
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    rateLimit(when, retryAfterSeconds, times = 1) {
      limits.push({ when, retryAfterSeconds, left: times });
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
