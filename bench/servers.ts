// The servers a benchmark needs, on free ports with their state in the benchmark's temp dir:
// Temporal's dev server (our search attributes registered) and moto. Stopped by the harness.
// BENCH_DYNAMIC_CONFIG sets the dev server's dynamic config for a comparison run: `server` for
// the server's own defaults, or space-separated key=value pairs; unset, the local stack's
// (DEV_DYNAMIC_CONFIG in cli/local-stack/servers.ts).
import path from 'node:path';
import { S3Client, CreateBucketCommand, type S3ClientConfig } from '@aws-sdk/client-s3';
import { startMoto, startTemporalServer } from '../cli/local-stack/servers';
import { freePort } from '../cli/local-stack/services';
import { SEARCH_ATTRIBUTES } from '../common/search-attributes';
import type { BenchContext } from './harness';

export interface BenchTemporal {
  address: string;
  dbFile: string;
  pid: number;
  metricsUrl: string;
}

export async function startTemporal(
  ctx: BenchContext,
  /** Default: the local stack's (DEV_SQLITE_PRAGMAS); [] for SQLite's own defaults. */
  sqlitePragmas?: readonly string[],
  tag = 'temporal',
): Promise<BenchTemporal> {
  const [port, httpPort, metricsPort, uiPort] = await Promise.all([1, 2, 3, 4].map(() => freePort()));
  const dbFile = path.join(ctx.dir, `${tag}.db`);
  const svc = ctx.service(
    await startTemporalServer({
      port,
      uiPort,
      httpPort,
      metricsPort,
      namespace: 'default',
      dbFile,
      searchAttributes: SEARCH_ATTRIBUTES,
      logFile: path.join(ctx.dir, `${tag}.log`),
      headless: true,
      sqlitePragmas,
      dynamicConfig: benchDynamicConfig(),
    }),
  );
  return {
    address: `127.0.0.1:${port}`,
    dbFile,
    pid: svc.child.pid!,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
  };
}

/** The dev server's dynamic config from BENCH_DYNAMIC_CONFIG (see the header); undefined: ours. */
export function benchDynamicConfig(env = process.env): readonly string[] | undefined {
  const raw = env.BENCH_DYNAMIC_CONFIG?.trim();
  if (!raw) return undefined;
  if (raw === 'server') return [];
  const values = raw.split(/\s+/);
  const bad = values.filter((v) => !/^[A-Za-z][\w.]*=\S+$/.test(v));
  if (bad.length > 0) throw new Error(`BENCH_DYNAMIC_CONFIG: not key=value: ${bad.join(' ')}`);
  return values;
}

export async function startAws(ctx: BenchContext): Promise<{ endpoint: string; pid: number }> {
  const port = await freePort();
  const svc = ctx.service(await startMoto({ port, logFile: path.join(ctx.dir, 'moto.log') }));
  return { endpoint: `http://127.0.0.1:${port}`, pid: svc.child.pid! };
}

export function s3Client(endpoint: string, more: Partial<S3ClientConfig> = {}): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
    ...more,
  });
}

export async function createBuckets(s3: S3Client, ...names: string[]): Promise<void> {
  for (const Bucket of names) await s3.send(new CreateBucketCommand({ Bucket }));
}

/** Counts S3 requests by command and the bytes of response bodies read (GetObject). */
export interface S3Counter {
  byCommand: Map<string, number>;
  bytesRead: number;
  bytesWritten: number;
  /** Every request since the last reset: command, key, body bytes read (GET) or written (PUT). */
  calls: { command: string; key: string; bytes: number }[];
  reset(): void;
  summary(): Record<string, number>;
}

export function countRequests(s3: S3Client): S3Counter {
  const c: S3Counter = {
    byCommand: new Map(),
    bytesRead: 0,
    bytesWritten: 0,
    calls: [],
    reset() {
      c.byCommand.clear();
      c.calls = [];
      c.bytesRead = 0;
      c.bytesWritten = 0;
    },
    summary() {
      return Object.fromEntries([...c.byCommand].sort());
    },
  };
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      const name = (context.commandName ?? '?').replace(/Command$/, '');
      c.byCommand.set(name, (c.byCommand.get(name) ?? 0) + 1);
      const req = args.request as { headers?: Record<string, string> };
      const written = Number(req.headers?.['content-length'] ?? 0);
      c.bytesWritten += written;
      const out = await next(args);
      const res = out.response as { headers?: Record<string, string> };
      const read = name === 'GetObject' ? Number(res.headers?.['content-length'] ?? 0) : 0;
      c.bytesRead += read;
      const key = (args.input as { Key?: string }).Key ?? '';
      c.calls.push({ command: name, key, bytes: name === 'GetObject' ? read : written });
      return out;
    },
    { step: 'finalizeRequest', name: 'benchRequestCounter' },
  );
  return c;
}
