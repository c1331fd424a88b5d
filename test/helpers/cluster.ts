// A real Temporal cluster for tests: the multi-service server built from `go.temporal.io/server`
// (scripts/bootstrap.js, step 6) on its own PostgreSQL, with SQL visibility (the postgres12 plugin
// for both stores), as production runs it, unlike the dev server (one binary, SQLite). Everything
// lives in a temp dir on free loopback ports:
//   - PostgreSQL: a cluster made by initdb, run by the `postgres` user when we are root (postgres
//     refuses root; `nobody` where no such user exists), trust authentication on 127.0.0.1 only;
//   - the schema: temporal-sql-tool creates both databases, sets up versioning and applies the
//     versioned schema files of the server's own module version (kept beside the binaries);
//   - the server: one process running frontend, history, matching and worker, from a generated
//     config file (each service with its own gRPC and membership port, as on separate hosts), and
//     a dynamic config file with the dev server's prompt task hand-off (TASK_HANDOFF_CONFIG);
//   - the namespace and search attributes: registered by `conveyor setup`, the command operators run
//     against a new cluster, not by the server's flags.
// Missing binaries are an error that names the bootstrap step, never a skip.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { BuildKey, RepositoryKey } from '../../common/search-attributes';
import { stringify } from 'yaml';
import { TASK_HANDOFF_CONFIG } from '../../cli/local-stack/servers';
import { ROOT } from '../../cli/local-stack/tools';
import { freePort, isPortFree, spawnService, type Service } from '../../cli/local-stack/services';
import { conveyor, type CliResult } from './cli';
import { testConfig, uid } from './stack';

const run = promisify(execFile);

export const CLUSTER_SERVER_VERSION = 'v1.32.0';

export interface Cluster {
  /** host:port of the frontend. */
  address: string;
  namespace: string;
  /** What `conveyor setup` printed when it prepared the cluster. */
  setup: CliResult;
  /** The server's log (JSON lines): read it when a test fails. */
  logFile: string;
  stop(): Promise<void>;
}

/** The binaries and schema of bootstrap's step 6; an error that says how to get them otherwise. */
export function clusterTools(): { server: string; sqlTool: string; schema: string } {
  const tools = {
    server: path.join(ROOT, '.tools', 'bin', 'temporal-server'),
    sqlTool: path.join(ROOT, '.tools', 'bin', 'temporal-sql-tool'),
    schema: path.join(ROOT, '.tools', 'temporal-server-schema', 'postgresql', 'v12'),
  };
  const missing = Object.values(tools).filter((p) => !fs.existsSync(p));
  if (missing.length > 0) {
    throw new Error(
      `the cluster test needs the Temporal server ${CLUSTER_SERVER_VERSION} and temporal-sql-tool, built by ` +
        `scripts/bootstrap.js (step 6: go install of go.temporal.io/server, needs Go): missing ${missing.join(', ')}. ` +
        'Run `npm run bootstrap` and read what it says about the Temporal server.',
    );
  }
  return tools;
}

/** The newest PostgreSQL server Debian installed (/usr/lib/postgresql/<major>/bin). */
export function postgresBin(): string {
  const base = '/usr/lib/postgresql';
  const majors = fs.existsSync(base)
    ? fs
        .readdirSync(base)
        .filter((v) => /^\d+$/.test(v) && fs.existsSync(path.join(base, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (majors.length === 0) {
    throw new Error(`no PostgreSQL server under ${base}: install it (as root: apt-get install -y postgresql)`);
  }
  return path.join(base, majors[0], 'bin');
}

/**
 * A free port below 32768: the server records its services' ports in PostgreSQL `smallint` columns
 * (cluster_membership), which refuse the kernel's ephemeral range that freePort() draws from.
 */
async function lowPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (!taken.has(port) && (await isPortFree(port))) {
      taken.add(port);
      return port;
    }
  }
}

/** Who runs PostgreSQL: ourselves, or (as root, which it refuses) the `postgres` user, else `nobody`. */
async function postgresUser(): Promise<{ name: string; uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    const id = await run('id', ['-u', name]).catch(() => undefined);
    const gid = await run('id', ['-g', name]).catch(() => undefined);
    if (id && gid) return { name, uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
  }
  throw new Error('running as root, and neither a postgres nor a nobody user exists to run PostgreSQL');
}

async function until<T>(what: string, logFile: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) {
        // The server's own lines are JSON with long stack traces: the last few, cut short.
        const tail = fs.existsSync(logFile)
          ? fs
              .readFileSync(logFile, 'utf8')
              .split('\n')
              .slice(-8)
              .map((l) => l.slice(0, 400))
              .join('\n')
          : '';
        throw new Error(`${what} within ${timeoutMs / 1000} s: ${(err as Error).message}\n${logFile}:\n${tail}`);
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

async function startPostgres(dir: string): Promise<{ service: Service; port: number }> {
  const bin = postgresBin();
  const user = await postgresUser();
  const data = path.join(dir, 'pgdata');
  const socketDir = path.join(dir, 'pgsocket');
  fs.mkdirSync(socketDir, { recursive: true });
  if (user) fs.chownSync(socketDir, user.uid, user.gid);
  if (user) fs.chownSync(dir, user.uid, user.gid);
  const as = (file: string, args: string[]): [string, string[]] =>
    user ? ['runuser', ['-u', user.name, '--', file, ...args]] : [file, args];
  // Trust on loopback: the server is reachable only from this machine and lives as long as the test.
  await run(...as(path.join(bin, 'initdb'), ['-D', data, '-U', 'temporal', '-A', 'trust', '-E', 'UTF8', '--no-sync']));
  const port = await freePort();
  const logFile = path.join(dir, 'postgres.log');
  const [file, args] = as(path.join(bin, 'postgres'), [
    '-D',
    data,
    '-p',
    String(port),
    '-k',
    socketDir,
    '-c',
    'listen_addresses=127.0.0.1',
    // Durability buys nothing for a database deleted after the test.
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
  ]);
  const service = spawnService('postgres', file, args, { logFile, cwd: dir });
  await until(
    'PostgreSQL did not accept connections',
    logFile,
    async () => {
      if (service.child.exitCode !== null) throw new Error(`exited with ${service.child.exitCode}`);
      await run(path.join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'temporal']);
    },
    30000,
  );
  return { service, port };
}

async function setupSchema(tools: ReturnType<typeof clusterTools>, pgPort: number, dir: string): Promise<void> {
  const logFile = path.join(dir, 'temporal-sql-tool.log');
  const sql = (database: string, ...args: string[]) =>
    run(tools.sqlTool, [
      '--plugin',
      'postgres12',
      '--endpoint',
      '127.0.0.1',
      '--port',
      String(pgPort),
      '--user',
      'temporal',
      '--database',
      database,
      ...args,
    ]).then((r) => fs.appendFileSync(logFile, r.stdout + r.stderr));
  await Promise.all(
    [
      ['temporal', 'temporal'],
      ['temporal_visibility', 'visibility'],
    ].map(async ([database, schema]) => {
      await sql(database, 'create-database');
      await sql(database, 'setup-schema', '--version', '0.0');
      await sql(database, 'update-schema', '--schema-dir', path.join(tools.schema, schema, 'versioned'));
    }),
  );
}

function serverConfig(
  pgPort: number,
  ports: Record<string, number>,
  dynamicConfigFile: string,
): Record<string, unknown> {
  const datastore = (databaseName: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `127.0.0.1:${pgPort}`,
      connectProtocol: 'tcp',
      user: 'temporal',
      password: '',
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const service = (name: string) => ({
    rpc: {
      grpcPort: ports[`${name}Grpc`],
      membershipPort: ports[`${name}Membership`],
      bindOnLocalHost: true,
      ...(name === 'frontend' ? { httpPort: ports.frontendHttp } : {}),
    },
  });
  return {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      numHistoryShards: 4,
      datastores: {
        'postgres-default': datastore('temporal', 20),
        'postgres-visibility': datastore('temporal_visibility', 10),
      },
    },
    global: {
      membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' },
      metrics: {
        prometheus: { framework: 'tally', timerType: 'histogram', listenAddress: `127.0.0.1:${ports.metrics}` },
      },
    },
    services: Object.fromEntries(['frontend', 'history', 'matching', 'worker'].map((s) => [s, service(s)])),
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: {
          enabled: true,
          initialFailoverVersion: 1,
          rpcName: 'frontend',
          rpcAddress: `127.0.0.1:${ports.frontendGrpc}`,
          httpAddress: `127.0.0.1:${ports.frontendHttp}`,
        },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '10s' },
    archival: { history: { state: 'disabled' }, visibility: { state: 'disabled' } },
    namespaceDefaults: { archival: { history: { state: 'disabled' }, visibility: { state: 'disabled' } } },
  };
}

/** Starts PostgreSQL and the Temporal server in `dir` and prepares namespace `default` with `conveyor setup`. */
export async function startCluster(dir: string): Promise<Cluster> {
  const tools = clusterTools();
  const services: Service[] = [];
  const stop = async () => {
    for (const s of services.reverse()) await s.stop(15000);
  };
  try {
    const pg = await startPostgres(dir);
    services.push(pg.service);
    await setupSchema(tools, pg.port, dir);
    const logFile = path.join(dir, 'temporal-server.log');

    const names = ['frontend', 'history', 'matching', 'worker'].flatMap((s) => [`${s}Grpc`, `${s}Membership`]);
    names.push('frontendHttp', 'metrics');
    const taken = new Set<number>();
    const ports: Record<string, number> = {};
    for (const n of names) ports[n] = await lowPort(taken);
    const configFile = path.join(dir, 'temporal-server.yaml');
    // The same prompt task hand-off as the dev server's (cli/local-stack/servers.ts), in the
    // dynamic config file format an operator's cluster uses (docs/operations.md).
    const dynamicConfigFile = path.join(dir, 'dynamic-config.yaml');
    fs.writeFileSync(
      dynamicConfigFile,
      stringify(Object.fromEntries(Object.entries(TASK_HANDOFF_CONFIG).map(([k, value]) => [k, [{ value }]]))),
    );
    fs.writeFileSync(configFile, stringify(serverConfig(pg.port, ports, dynamicConfigFile)));
    const server = spawnService(
      'temporal-server',
      tools.server,
      ['--config-file', configFile, '--allow-no-auth', 'start'],
      { logFile, cwd: dir },
    );
    services.push(server);
    const address = `127.0.0.1:${ports.frontendGrpc}`;
    await until(
      'the Temporal server did not serve',
      logFile,
      async () => {
        if (server.child.exitCode !== null) throw new Error(`exited with ${server.child.exitCode}`);
        const connection = await Connection.connect({ address, connectTimeout: 1000 });
        try {
          await connection.workflowService.getSystemInfo({});
        } finally {
          await connection.close();
        }
      },
      60000,
    );

    const namespace = 'default';
    const file = testConfig(
      [{ name: `acme/cluster-setup-${uid()}`, cloneUrl: '/nonexistent.git', steps: { unit: 'true' } }],
      {
        temporal: { address, namespace },
      },
    ).file;
    const setup = await conveyor(file, ['setup', '--retention-days', '1'], { timeoutMs: 120000 });
    if (setup.code !== 0) throw new Error(`conveyor setup failed (${setup.code}): ${setup.stdout}${setup.stderr}`);
    await untilStartsAccepted(address, namespace);
    return { address, namespace, setup, logFile, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * A cluster's frontend serves a namespace and search attributes from caches refreshed every few
 * seconds: right after `conveyor setup` registered them, a start can still be refused (namespace
 * not found, unknown search attribute) where the dev server, which registers them at boot, accepts
 * it. The first test would then see its push spooled instead of started. Waits until a start with
 * our search attributes is accepted (then terminates that probe), as an operator waits after setup.
 */
async function untilStartsAccepted(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const client = new Client({ connection, namespace });
    const deadline = Date.now() + 90_000;
    for (;;) {
      try {
        const handle = await client.workflow.start('clusterProbe', {
          taskQueue: `cluster-probe-${uid()}`,
          workflowId: `cluster-probe-${uid()}`,
          typedSearchAttributes: [
            { key: RepositoryKey, value: 'probe' },
            { key: BuildKey, value: 0 },
          ],
        });
        await handle.terminate('probe');
        return;
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`the cluster refuses starts 90 s after setup: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  } finally {
    await connection.close();
  }
}
