// The whole chain on free ports for the orchestration benchmarks: Temporal dev server, moto with
// buckets (and, with staging, 2 local hosts per distro registered in EC2), the orchestrator and
// builder workers and the webhook API as child processes (as `conveyor dev` runs them, so their
// memory can be read from /proc), and a no-op repository: every step `true`, a tiny package from
// the built-in packager (`make install` of the demo's sample project).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { stringify } from 'yaml';
import { defaultBaseDir, ensureLocalHost } from '../activities/fleet';
import { generateSigningKey } from '../activities/repository';
import { createAwsClients } from '../activities/storage/s3';
import { commitSample, type PushedCommit } from '../cli/demo/sample-repo';
import { processEnv, withNodeOptions, type StackProcess } from '../cli/local-stack/process-env';
import { provisionBuckets, provisionHosts } from '../cli/local-stack/provision';
import { freePort, spawnService, waitFor, type Service } from '../cli/local-stack/services';
import { ROOT, tsxBin } from '../cli/local-stack/tools';
import { pushPayload, sendWebhook } from '../cli/webhook-client';
import { buildQueue } from '../common/queues';
import { loadConfig, type ConveyorConfig } from '../config/conveyor';
import type { DevConfig } from '../config/temporal-dev';
import type { BenchContext } from './harness';
import { startAws, startTemporal, type BenchTemporal } from './servers';

export const REPOSITORY = 'bench/noop';

export interface ChainStack {
  config: ConveyorConfig;
  client: Client;
  temporal: BenchTemporal;
  /** The local AWS endpoint (moto): its URL and process. */
  aws: { endpoint: string; pid: number };
  apiUrl: string;
  secret: string;
  /** The stack's processes (orchestrator and builder absent with `workers: false`). */
  workers: Partial<Record<'orchestrator' | 'builder', Service>> & { api: Service };
  bare: string;
  /**
   * Commits the sample to `branch` with VERSION `version` and delivers its signed push webhook;
   * returns the run's ID. Build numbers count per branch and every branch publishes to one
   * channel: give each branch its own version, or two branches' build 1 would collide there.
   */
  push(
    branch: string,
    message: string,
    version: string,
  ): Promise<{ workflowId: string; commit: PushedCommit; webhookMs: number }>;
  /** The two halves of push: the commit (git, not timed by the benchmarks), then the delivery. */
  commit(branch: string, message: string, version: string): Promise<PushedCommit>;
  deliver(commit: PushedCommit): Promise<{ workflowId: string; commit: PushedCommit; webhookMs: number }>;
}

export async function startChainStack(
  ctx: BenchContext,
  o: {
    staging: boolean;
    /** The dev server's `--sqlite-pragma`s; default the local stack's (WAL), [] for SQLite's defaults. */
    sqlitePragmas?: readonly string[];
    tag?: string;
    /** default true */ workers?: boolean;
    /** Branches b0…b<n-1> publish to channels c0…c<n-1> (one lock each), the rest to `unstable`. */
    channelPerBranch?: number;
  },
): Promise<ChainStack> {
  const tag = o.tag ?? 'chain';
  const dir = path.join(ctx.dir, tag);
  fs.mkdirSync(dir, { recursive: true });
  const [temporal, aws] = await Promise.all([startTemporal(ctx, o.sqlitePragmas, `${tag}-temporal`), startAws(ctx)]);
  const keyFile = path.join(dir, 'signing-key.asc');
  await generateSigningKey(keyFile, 'Conveyor bench <bench@localhost>');
  const bare = path.join(dir, 'noop.git');
  const hostsDir = path.join(dir, 'hosts');
  const doc = {
    temporal: { address: temporal.address, namespace: 'default' },
    aws: { region: 'us-east-1', endpoint: aws.endpoint },
    github: { webhookSecretEnv: 'BENCH_WEBHOOK_SECRET', tokenEnv: 'BENCH_GITHUB_TOKEN' },
    api: { spoolDir: path.join(dir, 'spool') },
    signing: { keyFile },
    storage: { artifacts: 's3://bench-artifacts', staging: 's3://bench-staging', production: 's3://bench-production' },
    distros: {
      bookworm: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
      el9: { format: 'rpm', arch: 'x86_64' },
    },
    workspace: path.join(dir, 'work'),
    fleet: { hostsDir },
    // BENCH_WORKERS='{"maxCachedWorkflows":100}': worker settings to try (conveyor.yml's `workers`).
    ...(process.env.BENCH_WORKERS ? { workers: JSON.parse(process.env.BENCH_WORKERS) as Record<string, unknown> } : {}),
    repositories: [
      {
        name: REPOSITORY,
        cloneUrl: bare,
        branches: [
          ...Array.from({ length: o.channelPerBranch ?? 0 }, (_, i) => ({ match: `b${i}`, channel: `c${i}` })),
          { match: '*', channel: 'unstable' },
        ],
        steps: {
          unit: 'true',
          integration: 'true',
          package: 'make install DESTDIR=$CONVEYOR_ROOT',
          ...(o.staging ? { smoke: 'true', e2e: 'true' } : {}),
        },
        packaging: {
          builtin: { name: 'noop', maintainer: 'Bench <bench@example.com>', description: 'no-op', arch: 'all' },
        },
        packages: ['noop'],
        distros: ['bookworm', 'el9'],
        ...(o.staging ? { staging: { tags: { Environment: 'staging', Role: 'noop' }, batchSize: 1 } } : {}),
      },
    ],
  };
  const file = path.join(dir, 'conveyor.yml');
  fs.writeFileSync(file, stringify(doc));
  const config = loadConfig(file, {});
  const clients = createAwsClients(config);
  await provisionBuckets(clients, config, ['staging', 'production']);
  if (o.staging) {
    // provisionHosts reads only these two settings of temporal-dev.yml.
    const dev = {
      aws: { hosts: { perDistro: 2, tags: { Environment: 'staging' } } },
      dataDir: dir,
    } as unknown as DevConfig;
    const hosts = await provisionHosts(clients, config, dev);
    const t0 = Date.now();
    await Promise.all(
      hosts.map((h) => ensureLocalHost(h.root, config.distros[h.distro].format, { baseDir: defaultBaseDir() })),
    );
    ctx.log(`${hosts.length} local hosts ready in ${Date.now() - t0} ms`);
  }

  const secret = crypto.randomBytes(24).toString('hex');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CONVEYOR_CONFIG: file,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: 'default',
    AWS_ENDPOINT_URL: aws.endpoint,
    AWS_REGION: 'us-east-1',
    BENCH_WEBHOOK_SECRET: secret,
    CONVEYOR_LOG_LEVEL: 'warn',
  };
  // BENCH_CPU_PROF=api,orchestrator: those processes run as `node --cpu-prof --import tsx` (Node
  // refuses --cpu-prof in NODE_OPTIONS) and write V8 CPU profiles (open them in Chrome's DevTools)
  // under <run dir>/profiles/<role>/ when they exit; keep the run dir with CONVEYOR_BENCH_KEEP=1.
  const profiled = new Set((process.env.BENCH_CPU_PROF ?? '').split(',').filter(Boolean));
  // BENCH_NODE_OPTIONS_ORCHESTRATOR='--max-old-space-size=256' (and _BUILDER, _API): Node options
  // for that process alone, added to NODE_OPTIONS (memory settings to try under load).
  const nodeOptions = (role: StackProcess, e: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
    const extra = process.env[`BENCH_NODE_OPTIONS_${role.toUpperCase()}`];
    return extra ? withNodeOptions(e, extra) : e;
  };
  const spawnRole = (role: StackProcess, entry: string, args: string[] = []) => {
    const [command, pre] = profiled.has(role)
      ? [process.execPath, ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'profiles', role)}`, '--import', 'tsx']]
      : [tsxBin(), []];
    const svc = ctx.service(
      spawnService(role, command, [...pre, path.join(ROOT, entry), ...args], {
        env: nodeOptions(role, processEnv(role, config, env)),
        logFile: path.join(dir, `${role}.log`),
        cwd: ROOT,
      }),
    );
    // The profile is written at exit: give a loaded worker time to shut down (runs before the
    // harness's own 5 s stop, clean-ups run last first).
    if (profiled.has(role)) ctx.defer(() => svc.stop(60_000));
    return svc;
  };
  const [apiPort, statusPort] = [await freePort(), await freePort()];
  const withWorkers = o.workers ?? true;
  const workers = {
    ...(withWorkers
      ? {
          orchestrator: spawnRole('orchestrator', 'workers/orchestrator.ts'),
          builder: spawnRole('builder', 'workers/builder.ts'),
        }
      : {}),
    api: spawnRole('api', 'api/main.ts', ['--port', String(apiPort), '--status-port', String(statusPort)]),
  };
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  await waitFor('the webhook API', async () => (await fetch(`${apiUrl}/healthz`)).ok, {
    service: workers.api,
    timeoutMs: 60000,
  });
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, namespace: 'default' });
  ctx.defer(() => connection.close());
  const polled = withWorkers
    ? ([
        [config.temporal.taskQueue, 1, workers.orchestrator],
        ...Object.keys(config.distros).map((d) => [buildQueue(d), 2, workers.builder] as const),
      ] as const)
    : [];
  for (const [queue, type, svc] of polled) {
    await waitFor(
      `a worker polling ${queue}`,
      async () =>
        ((
          await client.workflowService.describeTaskQueue({
            namespace: 'default',
            taskQueue: { name: queue },
            taskQueueType: type,
          })
        ).pollers?.length ?? 0) > 0,
      { service: svc, timeoutMs: 120000, intervalMs: 300 },
    );
  }
  const work = path.join(dir, 'checkout');
  const stack: ChainStack = {
    config,
    client,
    temporal,
    aws,
    apiUrl,
    secret,
    workers,
    bare,
    async push(branch, message, version) {
      return stack.deliver(await stack.commit(branch, message, version));
    },
    commit(branch, message, version) {
      return commitSample(bare, `${work}-${branch}`, {
        branch,
        message,
        mutate: (d) => fs.writeFileSync(path.join(d, 'VERSION'), `${version}\n`),
      });
    },
    async deliver(commit) {
      const { branch, message } = commit;
      const t0 = performance.now();
      const res = await sendWebhook(
        apiUrl,
        secret,
        'push',
        pushPayload({ repository: REPOSITORY, branch, sha: commit.sha, before: commit.before, message }),
      );
      const webhookMs = performance.now() - t0;
      if (!res.body.workflowId) throw new Error(`webhook answered ${res.status}: ${JSON.stringify(res.body)}`);
      return { workflowId: res.body.workflowId, commit, webhookMs };
    },
  };
  return stack;
}
