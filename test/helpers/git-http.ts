// A private git remote on 127.0.0.1: git's own smart-HTTP server (`git http-backend`, as CGI)
// behind a Basic-auth check, like GitHub for a private repository. Records which requests came
// with which credential (never the credential itself), so tests can assert that a checkout
// authenticated and that nothing else did. Optionally serves a GitHub App's installation-token
// endpoint, verifying the app's JWT with its public key.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface GitHttpServer {
  /** Base URL; a bare repository `<root>/x.git` is at `<url>/x.git`. */
  url: string;
  /** Requests with the accepted credential, and without/with a wrong one. */
  counts: { authorized: number; refused: number };
  /** Installation tokens issued by the fake app endpoint. */
  issued: string[];
  close(): Promise<void>;
}

export interface GitHttpOptions {
  /** Directory holding bare repositories. */
  root: string;
  /** Tokens accepted as `x-access-token:<token>` Basic credentials. */
  tokens: () => string[];
  /** GitHub App: POST /app/installations/<id>/access_tokens with a JWT signed by this key. */
  app?: { appId: number; installationId: number; publicKeyPem: string };
}

export async function startGitHttp(opts: GitHttpOptions): Promise<GitHttpServer> {
  const counts = { authorized: 0, refused: 0 };
  const issued: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (
      opts.app &&
      req.method === 'POST' &&
      url.pathname === `/app/installations/${opts.app.installationId}/access_tokens`
    ) {
      const jwt = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
      if (!jwt || !verifyJwt(jwt, opts.app.publicKeyPem, opts.app.appId)) {
        res
          .writeHead(401, { 'content-type': 'application/json' })
          .end('{"message":"A JSON web token could not be decoded"}');
        return;
      }
      const token = `ghs_${crypto.randomBytes(12).toString('hex')}`;
      issued.push(token);
      res.writeHead(201, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          token,
          expires_at: new Date(Date.now() + 3600_000).toISOString(),
          permissions: { contents: 'read' },
        }),
      );
      return;
    }
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const [user, pass] = basic ? Buffer.from(basic, 'base64').toString().split(':') : [];
    if (user !== 'x-access-token' || !opts.tokens().includes(pass ?? '')) {
      counts.refused++;
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end();
      return;
    }
    counts.authorized++;
    const cgi = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: opts.root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        REMOTE_USER: 'x-access-token',
        ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
        ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: String(req.headers['content-encoding']) } : {}),
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (buf: Buffer) => {
      if (headersDone) {
        res.write(buf);
        return;
      }
      head = Buffer.concat([head, buf]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString().split('\r\n')) {
        const i = line.indexOf(':');
        const name = line.slice(0, i).trim();
        const value = line.slice(i + 1).trim();
        if (name.toLowerCase() === 'status') status = Number(value.split(' ')[0]);
        else res.setHeader(name, value);
      }
      res.writeHead(status);
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => res.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    issued,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function verifyJwt(jwt: string, publicKeyPem: string, appId: number): boolean {
  const [h, p, s] = jwt.split('.');
  if (!h || !p || !s) return false;
  const ok = crypto.verify('RSA-SHA256', Buffer.from(`${h}.${p}`), publicKeyPem, Buffer.from(s, 'base64url'));
  if (!ok) return false;
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as { iss?: unknown };
  return String(claims.iss) === String(appId);
}

export function repoUrl(server: GitHttpServer, root: string, bare: string): string {
  return `${server.url}/${path.relative(root, bare)}`;
}
