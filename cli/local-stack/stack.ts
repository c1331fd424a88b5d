// `conveyor dev`: the whole local stack from temporal-dev.yml and a conveyor.yml — Temporal dev
// server, the local AWS endpoint (versitygw for S3, moto for EC2 and SSM, one port: servers.ts says
// why) with buckets and staging instances, the orchestrator and builder workers, the webhook API —
// as child processes, stopped in order on Ctrl-C or SIGTERM; a worker or the API that dies is
// started again with backoff (supervise.ts), as systemd would. The stack writes .dev/stack.json
// while it runs: a second `conveyor dev` reads it and says the stack is up instead of failing on
// busy ports, and the demo reads it to find the API.
//
// What outlives a restart, all under temporal-dev.yml `dataDir` (.dev/): Temporal's runs
// (`temporal.dbFile`), the buckets (`s3/`, one directory per bucket, objects as files), the staging
// hosts (`hosts/`), the signing key and the webhook secret. The two stores must agree (a run that
// Temporal remembers published what the buckets hold), so `conveyor dev --reset` wipes both at once.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { defaultBaseDir, ensureLocalHost, resetLocalHost } from '../../activities/fleet';
import { generateSigningKey } from '../../activities/repository';
import { createAwsClients } from '../../activities/storage/s3';
import type { ConveyorConfig } from '../../config/conveyor';
import type { DevConfig } from '../../config/temporal-dev';
import { buildQueue } from '../../common/queues';
import { connectClient } from '../../workers/temporal';
import { processEnv } from './process-env';
import { provisionBuckets, provisionHosts, type ProvisionedHost } from './provision';
import { startLocalAws, startTemporalServer } from './servers';
import {
  exitedWithin,
  isAlive,
  isPortFree,
  signalGroup,
  spawnService,
  tailOf,
  waitFor,
  type Service,
} from './services';
import { supervise } from './supervise';
import { ROOT, tsxBin } from './tools';

export interface StackInfo {
  pid: number;
  startedAt: string;
  configFile: string;
  temporalAddress: string;
  namespace: string;
  uiUrl: string;
  awsEndpoint: string;
  /** Where the local S3 server keeps the buckets (kept across restarts; `conveyor dev --reset` wipes). */
  s3DataDir?: string;
  apiUrl: string;
  /** The API's status listener: /runs/<id>, /metrics (loopback, no token on the local stack). */
  statusUrl?: string;
  /** Each worker process's Prometheus endpoint (temporal-dev.yml `metrics`). */
  workerMetricsUrls?: Record<string, string>;
  logDir: string;
  hosts: ProvisionedHost[];
}

export function stackFile(dev: DevConfig): string {
  return path.join(dev.dataDir, 'stack.json');
}

/** The running stack described by .dev/stack.json, or undefined when none runs. */
export function runningStack(dev: DevConfig): StackInfo | undefined {
  try {
    const info = JSON.parse(fs.readFileSync(stackFile(dev), 'utf8')) as StackInfo;
    return isAlive(info.pid) ? info : undefined;
  } catch {
    return undefined;
  }
}

/** The webhook secret of the local stack: the env var named in config, else one generated once. */
export function devWebhookSecret(dev: DevConfig, config: ConveyorConfig, env = process.env): string {
  const fromEnv = env[config.github.webhookSecretEnv];
  if (fromEnv) return fromEnv;
  const file = path.join(dev.dataDir, 'webhook-secret');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    fs.mkdirSync(dev.dataDir, { recursive: true });
    const secret = crypto.randomBytes(32).toString('hex');
    fs.writeFileSync(file, secret + '\n', { mode: 0o600 });
    return secret;
  }
}

export interface StartedStack {
  info: StackInfo;
  stop(): Promise<void>;
}

/**
 * Starts the stack. `services` is owned by the caller, so a signal that arrives while the stack is
 * still starting can stop what has started so far (see stopServices).
 */
export async function startStack(
  dev: DevConfig,
  config: ConveyorConfig,
  log: (line: string) => void,
  services: Service[] = [],
): Promise<StartedStack> {
  const already = runningStack(dev);
  if (already) {
    throw new Error(
      `the local stack is already running (pid ${already.pid}, config ${already.configFile}).\n` +
        `  Web UI: ${already.uiUrl}\n  API:    ${already.apiUrl}\n  Stop it with Ctrl-C in its terminal or \`conveyor dev --stop\`.`,
    );
  }
  const ports: [string, number][] = [
    ['temporal.port', dev.temporal.port],
    ['temporal.uiPort', dev.temporal.uiPort],
    ['temporal.httpPort', dev.temporal.httpPort],
    ['temporal.metricsPort', dev.temporal.metricsPort],
    ['aws.port', dev.aws.port],
    ['api.port', dev.api.port],
    ['api.statusPort', dev.api.statusPort],
    ...dev.workers.flatMap((w): [string, number][] => (dev.metrics[w] ? [[`metrics.${w}`, dev.metrics[w]]] : [])),
  ];
  const busy: string[] = [];
  for (const [key, port] of ports) if (!(await isPortFree(port))) busy.push(`${key} ${port}`);
  if (busy.length > 0) {
    throw new Error(
      `ports in use by another process (not a Conveyor stack): ${busy.join(', ')}; change them in ${dev.file}`,
    );
  }

  const logDir = path.join(dev.dataDir, 'logs');
  fs.mkdirSync(logDir, { recursive: true });
  const stop = () => stopServices(dev, services);
  try {
    let t0 = Date.now();
    services.push(await startTemporalServer({ ...dev.temporal, logFile: path.join(logDir, 'temporal.log') }));
    log(`temporal dev server up on 127.0.0.1:${dev.temporal.port} (${Date.now() - t0} ms)`);
    t0 = Date.now();
    services.push(...(await startLocalAws({ port: dev.aws.port, s3DataDir: s3DataDir(dev), logDir })));
    const awsEndpoint = `http://127.0.0.1:${dev.aws.port}`;
    const temporalAddress = `127.0.0.1:${dev.temporal.port}`;
    const stackConfig: ConveyorConfig = {
      ...config,
      aws: { region: dev.aws.region, endpoint: awsEndpoint },
      temporal: { ...config.temporal, address: temporalAddress, namespace: dev.temporal.namespace },
    };
    if (config.signing?.keyFile && !fs.existsSync(config.signing.keyFile)) {
      const k0 = Date.now();
      await generateSigningKey(config.signing.keyFile, 'Conveyor local stack <conveyor@localhost>');
      log(`generated the local signing key ${config.signing.keyFile} (${Date.now() - k0} ms)`);
    }
    const aws = createAwsClients(stackConfig);
    const buckets = await provisionBuckets(aws, stackConfig, dev.aws.publicBuckets);
    const hosts = await provisionHosts(aws, stackConfig, dev);
    log(
      `local AWS endpoint up on ${awsEndpoint}: buckets ${buckets.join(', ')}; ${hosts.length} staging instances (${Date.now() - t0} ms)`,
    );
    await makeHosts(hosts, stackConfig, log);

    // Each process gets only its own secrets from this (process-env.ts). The local dev server is
    // plaintext without auth: a shell's TEMPORAL_API_KEY, TLS or profile settings (for a real
    // cluster) would make the stack's processes talk TLS to it, so none of them pass.
    // Nor do a shell's AWS keys: the local S3 server accepts only the fixed local credentials, and
    // real keys have no business reaching a local endpoint.
    const env: NodeJS.ProcessEnv = {
      ...withoutAwsCredentials(withoutTemporalSettings(process.env)),
      CONVEYOR_CONFIG: config.file,
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: dev.temporal.namespace,
      AWS_ENDPOINT_URL: awsEndpoint,
      AWS_REGION: dev.aws.region,
      [config.github.webhookSecretEnv]: devWebhookSecret(dev, config),
    };
    t0 = Date.now();
    // Workers and the API are started again when they die, as systemd's Restart= does in production.
    const restarting = (name: 'orchestrator' | 'builder' | 'api', file: string, args: string[] = []) => {
      const start = () =>
        spawnService(name, tsxBin(), [file, ...args], {
          env: processEnv(name, config, env),
          logFile: path.join(logDir, `${name}.log`),
          cwd: ROOT,
        });
      return supervise(start, start(), log);
    };
    for (const w of dev.workers) {
      const metricsArgs = dev.metrics[w] ? ['--metrics-port', String(dev.metrics[w])] : [];
      services.push(restarting(w, path.join(ROOT, 'workers', `${w}.ts`), metricsArgs));
    }
    const apiPort = dev.api.port;
    const apiArgs = ['--port', String(apiPort), '--status-port', String(dev.api.statusPort)];
    const api = restarting('api', path.join(ROOT, 'api', 'main.ts'), apiArgs);
    services.push(api);
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    await waitFor('the webhook API', async () => (await fetch(`${apiUrl}/healthz`)).ok, {
      service: api,
      timeoutMs: 60000,
    });
    await waitForPollers(stackConfig, dev, services);
    log(`workers and API up (${Date.now() - t0} ms)`);

    const info: StackInfo = {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      configFile: config.file,
      temporalAddress,
      namespace: dev.temporal.namespace,
      uiUrl: `http://127.0.0.1:${dev.temporal.uiPort}`,
      awsEndpoint,
      s3DataDir: s3DataDir(dev),
      apiUrl,
      statusUrl: `http://127.0.0.1:${dev.api.statusPort}`,
      workerMetricsUrls: Object.fromEntries(
        dev.workers.flatMap((w) => (dev.metrics[w] ? [[w, `http://127.0.0.1:${dev.metrics[w]}/metrics`]] : [])),
      ),
      logDir,
      hosts,
    };
    fs.writeFileSync(stackFile(dev), JSON.stringify(info, null, 2) + '\n');
    for (const svc of services) {
      void svc.exited.then((code) => {
        if (services.includes(svc))
          log(`${svc.name} exited with code ${code}; see ${svc.logFile}\n${tailOf(svc.logFile, 800)}`);
      });
    }
    return { info, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The staging hosts of the local stack are real Debian roots under .dev/hosts, made on first start
 * from a base root cached per user (debootstrap once: about 30 s for deb hosts, a minute for rpm
 * hosts, which also get rpm and dnf). They keep their installed packages across restarts.
 */
async function makeHosts(hosts: ProvisionedHost[], config: ConveyorConfig, log: (line: string) => void): Promise<void> {
  const t0 = Date.now();
  const made = await Promise.all(
    hosts.map((h) =>
      ensureLocalHost(h.root, config.distros[h.distro]?.format ?? 'deb', { baseDir: defaultBaseDir() }).then((r) => ({
        ...r,
        host: h,
      })),
    ),
  );
  const created = made.filter((m) => m.created);
  if (created.length === 0) return;
  const bases = [
    ...new Set(made.filter((m) => m.baseBuiltMs !== undefined).map((m) => `${m.base} (${m.baseBuiltMs} ms)`)),
  ];
  log(
    `made ${created.length} local staging host(s) in ${Date.now() - t0} ms: ${created.map((m) => m.host.name).join(', ')}` +
      (bases.length ? `; built base roots ${bases.join(', ')}` : ''),
  );
}

/** Where the local S3 server keeps the buckets: one directory per bucket, kept across restarts. */
export function s3DataDir(dev: DevConfig): string {
  return path.join(dev.dataDir, 's3');
}

/**
 * `conveyor dev --reset`: forgets every run and every published object (Temporal's SQLite file and
 * the buckets' directory), so the next start begins empty and both stores agree. Keeps the hosts
 * (`--reset-hosts`), the signing key and the webhook secret.
 */
export function resetStores(dev: DevConfig, log: (line: string) => void): void {
  for (const target of [
    dev.temporal.dbFile,
    `${dev.temporal.dbFile}-wal`,
    `${dev.temporal.dbFile}-shm`,
    s3DataDir(dev),
  ]) {
    if (!fs.existsSync(target)) continue;
    fs.rmSync(target, { recursive: true, force: true });
    log(`removed ${target}`);
  }
}

/** `conveyor dev --reset-hosts`: removes the local hosts so the next start makes them afresh. */
export async function resetHosts(dev: DevConfig, log: (line: string) => void): Promise<void> {
  const dir = path.join(dev.dataDir, 'hosts');
  if (!fs.existsSync(dir)) return;
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith('.')) continue;
    if (await resetLocalHost(path.join(dir, name))) log(`removed local host ${name}`);
  }
}

/**
 * `conveyor dev --stop`: SIGTERM to the running stack's process, up to `graceMs` for it to stop its
 * services and exit, then SIGKILL to its process group. Resolves once the process is gone, not
 * when its stack file is: the stack removes that file after stopping its services and before it
 * exits, and on a loaded machine its exit can come a moment later. How it ended; an error when
 * even SIGKILL left it running.
 */
export async function stopRunningStack(pid: number, graceMs = 30_000): Promise<'stopped' | 'killed'> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return 'stopped'; // gone already
  }
  if (await exitedWithin(pid, graceMs)) return 'stopped';
  signalGroup(pid, 'SIGKILL');
  if (await exitedWithin(pid, 5_000)) return 'killed';
  throw new Error(`the local stack (pid ${pid}) is still running after SIGKILL`);
}

/** Stops services newest first (workers and API before the servers they use), then forgets the stack. */
export async function stopServices(dev: DevConfig, services: Service[]): Promise<void> {
  for (const svc of [...services].reverse()) await svc.stop();
  services.length = 0;
  try {
    const info = JSON.parse(fs.readFileSync(stackFile(dev), 'utf8')) as StackInfo;
    if (info.pid === process.pid) fs.rmSync(stackFile(dev), { force: true });
  } catch {
    /* no stack file */
  }
}

/** Waits until every queue the stack serves has a poller, so a run started next is picked up at once. */
async function waitForPollers(config: ConveyorConfig, dev: DevConfig, services: Service[]): Promise<void> {
  const client = await connectClient(config, withoutTemporalSettings(process.env));
  try {
    const queues = [
      ...(dev.workers.includes('orchestrator') ? [config.temporal.taskQueue] : []),
      ...(dev.workers.includes('builder') ? Object.keys(config.distros).map(buildQueue) : []),
    ];
    for (const queue of queues) {
      const workflows = queue === config.temporal.taskQueue;
      const worker = services.find((s) => s.name === (workflows ? 'orchestrator' : 'builder'));
      await waitFor(
        `a worker polling ${queue}`,
        async () => {
          const r = await client.workflowService.describeTaskQueue({
            namespace: config.temporal.namespace,
            taskQueue: { name: queue },
            taskQueueType: workflows ? 1 : 2, // TASK_QUEUE_TYPE_WORKFLOW : TASK_QUEUE_TYPE_ACTIVITY
          });
          return (r.pollers?.length ?? 0) > 0;
        },
        { service: worker, timeoutMs: 120000, intervalMs: 500 },
      );
    }
  } finally {
    await client.connection.close();
  }
}

/** `env` less every TEMPORAL_* setting (address, API key, TLS, profile: config/temporal-settings.ts). */
export function withoutTemporalSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('TEMPORAL_')));
}

/** `env` less the AWS credential settings the SDK's default chain would pick up. */
export function withoutAwsCredentials(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const names = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'];
  return Object.fromEntries(Object.entries(env).filter(([k]) => !names.includes(k)));
}
