// One local AWS endpoint in front of two servers: S3 requests go to versitygw (objects on disk),
// EC2 and SSM requests to moto (in memory; the stack registers its instances again at every start).
// The code talks to a single `aws.endpoint`, as it does to one region of real AWS, so the split
// stays inside the local stack. A request names its service in its SigV4 credential scope
// (`Credential=<key>/<date>/<region>/<service>/aws4_request`, in the Authorization header or, when
// presigned, in X-Amz-Credential); unsigned requests are apt and dnf reading the repository
// buckets, so S3. Requests are piped unchanged, Host header included, so the signatures the
// servers check are the ones the clients made.
import http from 'node:http';

export interface AwsRouter {
  port: number;
  close(): Promise<void>;
}

const SCOPE = /Credential=[^/,\s]+\/\d{8}\/[^/]+\/([a-z0-9-]+)\/aws4_request/;

/** The backend that serves `req`: 's3' for S3 and unsigned requests, 'moto' for the rest. */
export function routeOf(req: Pick<http.IncomingMessage, 'headers' | 'url'>): 's3' | 'moto' {
  if (req.url?.startsWith('/moto-api/')) return 'moto';
  const auth = req.headers.authorization ?? '';
  let service = SCOPE.exec(auth)?.[1];
  if (!service) {
    const q = new URL(req.url ?? '/', 'http://local').searchParams.get('X-Amz-Credential');
    service = q?.split('/')[3];
  }
  return !service || service === 's3' ? 's3' : 'moto';
}

export function startAwsRouter(o: { port: number; s3Port: number; motoPort: number }): Promise<AwsRouter> {
  const server = http.createServer((req, res) => {
    const port = routeOf(req) === 's3' ? o.s3Port : o.motoPort;
    const upstream = http.request(
      { host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.statusMessage, up.rawHeaders);
        up.pipe(res);
      },
    );
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`local AWS endpoint: backend on port ${port}: ${err.message}\n`);
    });
    req.on('aborted', () => upstream.destroy());
    req.pipe(upstream);
  });
  // Keep-alive sockets from the SDK would hold close() open until they time out.
  server.keepAliveTimeout = 5000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, '127.0.0.1', () =>
      resolve({
        port: o.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      }),
    );
  });
}

// Run as its own process by the local stack (servers.ts startLocalAws), so it is stopped, logged
// and waited for like the servers behind it.
if (require.main === module) {
  const arg = (name: string) => {
    const v = Number(process.argv[process.argv.indexOf(name) + 1]);
    if (!Number.isInteger(v) || v <= 0) throw new Error(`aws-router: ${name} needs a port number`);
    return v;
  };
  void startAwsRouter({ port: arg('--port'), s3Port: arg('--s3-port'), motoPort: arg('--moto-port') }).then((r) => {
    process.stdout.write(
      `local AWS endpoint on 127.0.0.1:${r.port}: S3 → ${arg('--s3-port')}, EC2/SSM → ${arg('--moto-port')}\n`,
    );
    const stop = () => void r.close().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
