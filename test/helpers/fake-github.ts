// A stand-in for api.github.com on 127.0.0.1: answers the commit status endpoint as GitHub does,
// records every request (method, path, whether it carried a token, JSON body; never the token),
// and can be told to answer the next requests with a rate limit or a server error first.
import http from 'node:http';
import { listen } from '../../api/server';

export interface RecordedRequest {
  method: string;
  path: string;
  /** `token` / `bearer` when an Authorization header came, else undefined. */
  authScheme?: string;
  /** True when the Authorization header carried exactly the expected token (if one was set). */
  tokenMatches?: boolean;
  body: unknown;
  at: number;
  /** The HTTP status this stand-in answered. */
  status?: number;
}

export type Failure =
  | { kind: '429'; retryAfterSeconds: number }
  | { kind: '403-rate-limit'; resetInSeconds: number }
  | { kind: '403-secondary'; retryAfterSeconds: number }
  | { kind: 'status'; status: number; message: string };

export interface FakeGithub {
  url: string;
  requests: RecordedRequest[];
  /** The next `times` requests get `failure` instead of their answer. */
  failNext(times: number, failure: Failure): void;
  close(): Promise<void>;
}

const STATUS_PATH = /^\/repos\/([^/]+)\/([^/]+)\/statuses\/([0-9a-f]+)$/;

export async function startFakeGithub(opts: { expectedToken?: string } = {}): Promise<FakeGithub> {
  const requests: RecordedRequest[] = [];
  const failures: Failure[] = [];
  let nextId = 1;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        /* recorded as text */
      }
      const auth = req.headers.authorization;
      const path = (req.url ?? '/').split('?')[0];
      const record: RecordedRequest = {
        method: req.method ?? '',
        path,
        authScheme: auth?.split(' ')[0]?.toLowerCase(),
        tokenMatches: opts.expectedToken ? auth?.split(' ')[1] === opts.expectedToken : undefined,
        body,
        at: Date.now(),
      };
      requests.push(record);
      const reply = (status: number, data: unknown, headers: Record<string, string> = {}) => {
        record.status = status;
        const out = JSON.stringify(data);
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
        res.end(out);
      };
      const failure = failures.shift();
      if (failure?.kind === '429') {
        return reply(429, { message: 'Too many requests' }, { 'retry-after': String(failure.retryAfterSeconds) });
      }
      if (failure?.kind === '403-rate-limit') {
        return reply(
          403,
          { message: 'API rate limit exceeded for user ID 1.' },
          {
            'x-ratelimit-limit': '5000',
            'x-ratelimit-remaining': '0',
            'x-ratelimit-reset': String(Math.ceil(Date.now() / 1000 + failure.resetInSeconds)),
          },
        );
      }
      if (failure?.kind === '403-secondary') {
        return reply(
          403,
          { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.' },
          { 'retry-after': String(failure.retryAfterSeconds) },
        );
      }
      if (failure?.kind === 'status') return reply(failure.status, { message: failure.message });

      const m = STATUS_PATH.exec(path);
      if (req.method !== 'POST' || !m) return reply(404, { message: 'Not Found' });
      if (!auth) return reply(401, { message: 'Requires authentication' });
      if (opts.expectedToken && auth.split(' ')[1] !== opts.expectedToken) {
        return reply(401, { message: 'Bad credentials' });
      }
      const b = body as { state?: string; context?: string; description?: string; target_url?: string };
      if (!['pending', 'success', 'failure', 'error'].includes(b?.state ?? '')) {
        return reply(422, { message: 'Validation Failed' });
      }
      reply(201, {
        id: nextId++,
        state: b.state,
        context: b.context ?? 'default',
        description: b.description ?? null,
        target_url: b.target_url ?? null,
        url: `https://api.github.com/repos/${m[1]}/${m[2]}/statuses/${m[3]}`,
      });
    });
  });
  const port = await listen(server, 0);
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    failNext(times, failure) {
      for (let i = 0; i < times; i++) failures.push(failure);
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
