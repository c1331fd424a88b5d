// The servers of the local stack: Temporal's dev server (SQLite file, our search attributes
// registered at start) and the local AWS endpoint: one port (aws-router.ts) in front of versitygw
// for S3 and moto for EC2 and SSM.
//
// Why versitygw for S3 (issue 13: the buckets must outlive a restart, as Temporal's SQLite file
// does; moto keeps objects in memory). Measured here (2 cores, go 1.26.8), each candidate probed for
// what the code relies on: PutObject `IfNoneMatch: '*'` → 412 on an existing key, ChecksumSHA256
// refused when wrong, user metadata, multipart upload, ListObjectsV2 with continuation, CopyObject,
// ranged GET, DeleteObjects, path-style addressing, and a bucket policy granting anonymous
// s3:GetObject (apt and dnf read over plain HTTP) while anonymous PUT and LIST stay refused.
// - versitygw v1.8.0 (Apache-2.0; posix backend: one file per object under the data dir, metadata
//   and policies in xattrs): `go install …@v1.8.0` works (no `replace` in its go.mod), 6 min cold
//   (mostly downloads), 84 MB binary, serves requests 0.7 s after start, passes every probe, and
//   its conditional PUT is atomic (six racing `IfNoneMatch` PUTs: exactly one wins). Where moto
//   differed from S3 it is stricter: a wrong ChecksumSHA256 is refused, anonymous PUT and LIST of a
//   public bucket are refused (moto allowed both), anonymous HEAD is allowed (moto refused it).
//   One difference from S3: keys `a` and `a/b` cannot both exist (ObjectParentIsFile), as with any
//   file-per-object store; Conveyor's key layouts never do that.
// - SeaweedFS (weed, pseudo-version 2026-11-09): needs a wrapper module for its `replace`; 233 MB,
//   S3 ready 3.3 s after `weed server -s3`, the S3 calls pass, but without an identities file it
//   checks no credentials and lets anyone PUT and LIST; several servers (master, volume, filer, s3)
//   for what a single directory does here.
// - moto stays for EC2 and SSM, which it serves well and which hold nothing to keep: the stack
//   registers its staging instances again at every start (provision.ts).
//
// The dev server's SQLite database runs in WAL mode with synchronous=normal (DEV_SQLITE_PRAGMAS):
// measured by `npm run bench -- concurrency` (docs/benchmarks.md §2), the server then does the
// same workflow and activity tasks about 3× faster than with SQLite's rollback journal, because a
// commit no longer rewrites and fsyncs the journal and readers stop blocking the writer. What it
// gives up: with synchronous=normal the last transactions may be lost if the *machine* crashes
// (not the process), which is no loss for a local stack or a test run. The journal mode is a
// property of the database file (PRAGMA journal_mode reads back `wal`); synchronous is per
// connection, so it is passed at every start.
//
// The dev server's history service hands each new workflow and activity task to matching through
// its transfer queue, and reads that queue at most history.transferProcessorMaxPollRPS times a
// second (default 20). The dev server has one history shard, so every workflow shares the one
// queue: a workflow task made within 50 ms of the last read waited for the next one. Each stage
// child paid it several times (its first task, every activity completion, every signal), the
// floor of issue 14 (a child with one no-op activity) was 189 ms, and the whole no-op chain
// with staging hosts 5.3 s. At 1,000 reads a second (DEV_DYNAMIC_CONFIG) the floor is 26 ms and
// the chain 4.1 s (`npm run bench -- overhead`, docs/benchmarks.md §1). The reads are made only
// when a task is written, so an idle server does no more work; under 100 chains at once, see
// §2. A cluster has a queue per shard, so a task waits only when its shard was read within the
// last 50 ms: on the test cluster (4 shards) the floor is 43 ms without the key and 40 ms with it.
// docs/operations.md tells operators how to set it.
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { motoBin, ROOT, temporalBin, temporalCliAtLeast, tsxBin, versitygwBin } from './tools';
import { freePort, spawnService, waitFor, type Service } from './services';
import { LOCAL_CREDENTIALS } from '../../activities/storage/s3';

export interface TemporalServerOptions {
  port: number;
  uiPort: number;
  httpPort: number;
  metricsPort: number;
  namespace: string;
  dbFile: string;
  searchAttributes: Record<string, string>;
  logFile: string;
  headless?: boolean;
  /** `--sqlite-pragma` settings; default DEV_SQLITE_PRAGMAS, [] for SQLite's own defaults. */
  sqlitePragmas?: readonly string[];
  /** `--dynamic-config-value` settings; default DEV_DYNAMIC_CONFIG, [] for the server's own defaults. */
  dynamicConfig?: readonly string[];
  /** More `start-dev` flags. */
  extraArgs?: string[];
}

export const DEV_SQLITE_PRAGMAS: readonly string[] = ['journal_mode=wal', 'synchronous=normal'];

/** Dynamic config that hands tasks to the workers without waiting on the transfer queue's read
 * rate (see the header); the test cluster's dynamic config file sets the same (test/helpers/cluster.ts). */
export const TASK_HANDOFF_CONFIG: Readonly<Record<string, number>> = { 'history.transferProcessorMaxPollRPS': 1000 };

export const DEV_DYNAMIC_CONFIG: readonly string[] = Object.entries(TASK_HANDOFF_CONFIG).map(([k, v]) => `${k}=${v}`);

/** The `temporal server start-dev` arguments for `o`. */
export function devServerArgs(o: Omit<TemporalServerOptions, 'logFile'>): string[] {
  return [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(o.port),
    '--http-port',
    String(o.httpPort),
    '--metrics-port',
    String(o.metricsPort),
    '--db-filename',
    o.dbFile,
    '--namespace',
    o.namespace,
    '--log-level',
    'warn',
    ...(o.headless ? ['--headless'] : ['--ui-port', String(o.uiPort)]),
    // CLI 1.9's Web UI fetches a newsfeed from the internet on every page load; the local stack
    // must not depend on (or leak to) the internet. The flag does not exist in 1.5.
    ...(!o.headless && temporalCliAtLeast(1, 9) ? ['--ui-disable-news-fetch'] : []),
    ...Object.entries(o.searchAttributes).flatMap(([k, t]) => ['--search-attribute', `${k}=${t}`]),
    ...(o.sqlitePragmas ?? DEV_SQLITE_PRAGMAS).flatMap((p) => ['--sqlite-pragma', p]),
    ...(o.dynamicConfig ?? DEV_DYNAMIC_CONFIG).flatMap((v) => ['--dynamic-config-value', v]),
    ...(o.extraArgs ?? []),
  ];
}

export async function startTemporalServer(o: TemporalServerOptions): Promise<Service> {
  fs.mkdirSync(path.dirname(o.dbFile), { recursive: true });
  const svc = spawnService('temporal', temporalBin(), devServerArgs(o), { logFile: o.logFile });
  await waitFor(
    `Temporal at 127.0.0.1:${o.port}`,
    async () => {
      const conn = await Connection.connect({ address: `127.0.0.1:${o.port}`, connectTimeout: '1 second' });
      try {
        await conn.workflowService.describeNamespace({ namespace: o.namespace });
        return true;
      } finally {
        await conn.close();
      }
    },
    { service: svc, timeoutMs: 60000 },
  );
  return svc;
}

export async function startMoto(o: { port: number; logFile: string }): Promise<Service> {
  const svc = spawnService('moto', motoBin(), ['-H', '127.0.0.1', '-p', String(o.port)], { logFile: o.logFile });
  await waitFor(`moto at 127.0.0.1:${o.port}`, async () => (await fetch(`http://127.0.0.1:${o.port}/moto-api/`)).ok, {
    service: svc,
    timeoutMs: 60000,
  });
  return svc;
}

/** versitygw serving the buckets under `dataDir` (one directory per bucket) on 127.0.0.1:port. */
export async function startS3Server(o: { port: number; dataDir: string; logFile: string }): Promise<Service> {
  fs.mkdirSync(o.dataDir, { recursive: true });
  const args = ['--port', `127.0.0.1:${o.port}`, '--quiet', 'posix', o.dataDir];
  // The root credentials are the fixed local ones (activities/storage/s3.ts); through the
  // environment, so they stay off the process list.
  const env = {
    ...process.env,
    ROOT_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    ROOT_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
  };
  const svc = spawnService('versitygw', versitygwBin(), args, { logFile: o.logFile, env });
  // Any HTTP answer (an anonymous GET / is refused with 403) means it serves.
  await waitFor(
    `versitygw at 127.0.0.1:${o.port}`,
    async () => (await fetch(`http://127.0.0.1:${o.port}/`)).status > 0,
    {
      service: svc,
      timeoutMs: 30000,
    },
  );
  return svc;
}

/**
 * The local AWS endpoint on `port`: versitygw (S3, objects under `s3DataDir`, kept across
 * restarts), moto (EC2, SSM) on free ports, and the router in front. Returned in start order, so
 * stopping them newest first takes the router down before the servers behind it.
 */
export async function startLocalAws(o: { port: number; s3DataDir: string; logDir: string }): Promise<Service[]> {
  const [s3Port, motoPort] = [await freePort(), await freePort()];
  // The router starts beside the servers, not after them (tsx takes seconds to start, more on a
  // busy machine); it answers 502 until its backend is up.
  const routerArgs = [path.join(__dirname, 'aws-router.ts'), '--port', String(o.port)];
  routerArgs.push('--s3-port', String(s3Port), '--moto-port', String(motoPort));
  const router = spawnService('aws-router', tsxBin(), routerArgs, {
    logFile: path.join(o.logDir, 'aws-router.log'),
    cwd: ROOT,
  });
  const started: Service[] = [];
  try {
    const servers = await Promise.allSettled([
      startS3Server({ port: s3Port, dataDir: o.s3DataDir, logFile: path.join(o.logDir, 'versitygw.log') }),
      startMoto({ port: motoPort, logFile: path.join(o.logDir, 'moto.log') }),
    ]);
    for (const r of servers) if (r.status === 'fulfilled') started.push(r.value);
    // Last in the list, so a stop (newest first) takes it down before the servers behind it.
    started.push(router);
    for (const r of servers) if (r.status === 'rejected') throw r.reason;
    await waitFor(
      `the local AWS endpoint at 127.0.0.1:${o.port}`,
      async () => (await fetch(`http://127.0.0.1:${o.port}/moto-api/`)).ok,
      { service: router, timeoutMs: 60000 },
    );
    return started;
  } catch (err) {
    for (const svc of started.reverse()) await svc.stop();
    throw err;
  }
}
