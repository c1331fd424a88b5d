// The two servers of the local stack: Temporal's dev server (SQLite file, our search attributes
// registered at start) and moto (S3, EC2, SSM on one port).
//
// The dev server's SQLite database runs in WAL mode with synchronous=normal (DEV_SQLITE_PRAGMAS):
// measured by `npm run bench -- concurrency` (docs/benchmarks.md §2), the server then does the
// same workflow and activity tasks about 3× faster than with SQLite's rollback journal, because a
// commit no longer rewrites and fsyncs the journal and readers stop blocking the writer. What it
// gives up: with synchronous=normal the last transactions may be lost if the *machine* crashes
// (not the process), which is no loss for a local stack or a test run. The journal mode is a
// property of the database file (PRAGMA journal_mode reads back `wal`); synchronous is per
// connection, so it is passed at every start.
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { motoBin, temporalBin, temporalCliAtLeast } from './tools';
import { spawnService, waitFor, type Service } from './services';

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
  /** More `start-dev` flags. */
  extraArgs?: string[];
}

export const DEV_SQLITE_PRAGMAS: readonly string[] = ['journal_mode=wal', 'synchronous=normal'];

export async function startTemporalServer(o: TemporalServerOptions): Promise<Service> {
  fs.mkdirSync(path.dirname(o.dbFile), { recursive: true });
  const args = [
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
    ...(o.extraArgs ?? []),
  ];
  const svc = spawnService('temporal', temporalBin(), args, { logFile: o.logFile });
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
