// Helpers for tests against the isolated stack of test/setup/global-setup.ts: a config file per
// test (unique task queues, buckets and distro names, so tests never see each other's work),
// real AWS clients, Temporal connections and in-process workers.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { stringify } from 'yaml';
import { createAwsClients, type AwsClients } from '../../activities/storage/s3';
import { provisionBuckets } from '../../cli/local-stack/provision';
import type { TemporalServerOptions } from '../../cli/local-stack/servers';
import { freePort } from '../../cli/local-stack/services';
import { SEARCH_ATTRIBUTES } from '../../common/search-attributes';
import type { PipelineStatus, RunStatus } from '../../common/types';
import { loadConfig, type ConveyorConfig } from '../../config/conveyor';
import { decidePush } from '../../api/github-push';
import { startPipeline } from '../../api/start-pipeline';
import { commitSample } from '../../cli/demo/sample-repo';
import { pushPayload } from '../../cli/webhook-client';
import { fileTaskQueues } from './file-queues';
import { statusQuery } from '../../workflows/messages';
import { createBuilderWorkers, createOrchestratorWorker } from '../../workers/create';

export function testEnv() {
  const dir = process.env.CONVEYOR_TEST_DIR;
  const temporal = process.env.CONVEYOR_TEST_TEMPORAL;
  const aws = process.env.CONVEYOR_TEST_AWS;
  const bundle = process.env.CONVEYOR_TEST_BUNDLE;
  const signingKey = process.env.CONVEYOR_TEST_SIGNING_KEY;
  if (!dir || !temporal || !aws || !bundle || !signingKey)
    throw new Error('the test stack is not running (jest global setup)');
  return { dir, temporal, aws, bundle, signingKey };
}

export function uid(): string {
  return crypto.randomBytes(4).toString('hex');
}

export function tempDir(name: string): string {
  const d = path.join(testEnv().dir, `${name}-${uid()}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

export interface TestRepository {
  name: string;
  cloneUrl: string;
  steps: Record<string, string | { examples: string[] }>;
  branches?: { match: string; channel: string; release?: boolean; approval?: boolean; supersede?: boolean }[];
  /** Any other repository keys of conveyor.yml (staging, packaging, retention, …). */
  more?: Record<string, unknown>;
}

export interface TestDistro {
  format: 'deb' | 'rpm';
  codename?: string;
  arch: string;
}

/** The two distros most chain tests build for: a Debian suite and an rpm one. */
export const DEB_AND_RPM: Record<string, TestDistro> = {
  deb: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
  rpm: { format: 'rpm', arch: 'x86_64' },
};

/**
 * Writes a conveyor.yml for one test and loads it through the real loader. Distro names get a
 * unique suffix (`<name>-<id>`) so each test has its own build queues; repositories use them all.
 */
export function testConfig(
  repositories: TestRepository[],
  extra: Record<string, unknown> = {},
  distros: Record<string, TestDistro> = { deb: { format: 'deb', codename: 'bookworm', arch: 'amd64' } },
): ConveyorConfig {
  const env = testEnv();
  const id = uid();
  const distroDocs = Object.fromEntries(Object.entries(distros).map(([name, spec]) => [`${name}-${id}`, spec]));
  const doc = {
    temporal: {
      address: env.temporal,
      namespace: 'default',
      taskQueue: `conveyor-${id}`,
      uiUrl: 'http://127.0.0.1:8233',
    },
    // A token env var of this test only: a GITHUB_TOKEN in the environment must never reach GitHub from tests.
    github: { tokenEnv: `CONVEYOR_TEST_GITHUB_TOKEN_${id.toUpperCase()}` },
    aws: { region: 'us-east-1', endpoint: env.aws },
    storage: {
      artifacts: `s3://artifacts-${id}`,
      staging: `s3://staging-${id}`,
      production: `s3://production-${id}`,
    },
    distros: distroDocs,
    signing: { keyFile: env.signingKey },
    workspace: path.join(env.dir, `work-${id}`),
    // Tests stop their workers with steps in flight (cancellation, aborts): no long grace.
    workers: { shutdownGraceSeconds: 5 },
    repositories: repositories.map((r) => ({
      name: r.name,
      cloneUrl: r.cloneUrl,
      branches: r.branches ?? [{ match: 'main', channel: 'unstable' }],
      steps: r.steps,
      distros: Object.keys(distroDocs),
      ...r.more,
    })),
    ...extra,
  };
  const file = path.join(env.dir, `conveyor-${id}.yml`);
  fs.writeFileSync(file, stringify(doc));
  const queue = (doc.temporal as { taskQueue?: string } | undefined)?.taskQueue;
  if (queue) fileTaskQueues.add(queue);
  return loadConfig(file, {});
}

/**
 * Options for a Temporal dev server of the test's own (free ports, its SQLite file in `dir`,
 * headless, our search attributes): for tests that stop it, need its Web UI or a bare server.
 */
export async function ownServerOptions(
  dir: string,
  more: Partial<TemporalServerOptions> = {},
): Promise<TemporalServerOptions> {
  const [port, httpPort, metricsPort, uiPort] = await Promise.all([1, 2, 3, 4].map(() => freePort()));
  return {
    port,
    httpPort,
    metricsPort,
    uiPort,
    namespace: 'default',
    dbFile: path.join(dir, 'temporal.db'),
    searchAttributes: SEARCH_ATTRIBUTES,
    logFile: path.join(dir, 'temporal.log'),
    headless: true,
    ...more,
  };
}

export async function awsFor(config: ConveyorConfig): Promise<AwsClients> {
  const aws = createAwsClients(config, {});
  await provisionBuckets(aws, config, ['staging', 'production']);
  return aws;
}

/**
 * An S3 client of the stack that plays a publisher dying mid-publish: a PutObject whose key
 * `dies` names a reason for fails with that reason, before anything is sent.
 */
export function dyingS3(config: ConveyorConfig, dies: (key: string) => string | undefined): S3Client {
  const s3 = createAwsClients(config, {}).s3;
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      const reason =
        context.commandName === 'PutObjectCommand' ? dies((args.input as { Key?: string }).Key ?? '') : undefined;
      if (reason) throw new Error(reason);
      return next(args);
    },
    { step: 'initialize', name: 'dyingPublisher' },
  );
  return s3;
}

export async function clientFor(config: ConveyorConfig): Promise<Client> {
  const connection = await Connection.connect({ address: config.temporal.address });
  return new Client({ connection, namespace: config.temporal.namespace });
}

let runtimeInstalled = false;

/** Orchestrator and builder workers for the config, in this process, until `stop()`. */
export async function startWorkers(
  config: ConveyorConfig,
  which: { orchestrator?: boolean; builders?: boolean } = {},
): Promise<{ stop(): Promise<void> }> {
  if (!runtimeInstalled) {
    runtimeInstalled = true;
    Runtime.install({ logger: new DefaultLogger((process.env.CONVEYOR_TEST_LOG_LEVEL as 'WARN') ?? 'WARN') });
  }
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const client = await clientFor(config);
  const workers: Worker[] = [
    ...(which.orchestrator === false
      ? []
      : [await createOrchestratorWorker({ connection, config, client, workflowBundlePath: testEnv().bundle })]),
    ...(which.builders === false ? [] : await createBuilderWorkers({ connection, config, client })),
  ];
  const running = workers.map((w) => w.run());
  return {
    async stop() {
      workers.forEach((w) => w.shutdown());
      await Promise.all(running);
      await connection.close();
      await client.connection.close();
    },
  };
}

/** Polls the pipeline's `status` query until it reports `want` (or one of them). */
export async function waitForStatus(
  client: Client,
  id: string,
  want: RunStatus | RunStatus[],
  timeoutMs = 60000,
): Promise<PipelineStatus> {
  const deadline = Date.now() + timeoutMs;
  const wanted: RunStatus[] = Array.isArray(want) ? want : [want];
  for (;;) {
    const s = await client.workflow
      .getHandle(id)
      .query(statusQuery)
      .catch(() => undefined);
    if (s && wanted.includes(s.status)) return s;
    if (Date.now() > deadline)
      throw new Error(`${id} did not reach ${wanted.join(' or ')}; last status ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Commits the sample project to `branch` of the bare repository and starts the pipeline for it as
 * the webhook would (decidePush + startPipeline, no HTTP): for tests about what happens after.
 */
export async function startSampleRun(
  config: ConveyorConfig,
  client: Client,
  o: {
    repository: string;
    bare: string;
    work: string;
    branch?: string;
    message: string;
    mutate?: (dir: string) => void;
  },
): Promise<{ sha: string; workflowId: string }> {
  const branch = o.branch ?? 'main';
  const commit = await commitSample(o.bare, o.work, { branch, message: o.message, mutate: o.mutate });
  const d = decidePush(config, pushPayload({ repository: o.repository, branch, sha: commit.sha }));
  if (d.action !== 'start') throw new Error(d.reason);
  const { workflowId } = await startPipeline(client, d.input, config.temporal.taskQueue);
  return { sha: commit.sha, workflowId };
}

/** A Temporal logger that says nothing (MockActivityEnvironment, bundlers). */
export const silentLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
