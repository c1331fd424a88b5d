// Activity factories: dependencies are injected, workflows see only the types of the results
// through `proxyActivities` (import type), so test doubles cannot drift from the real signatures.
// Two sets, two kinds of worker:
// - build activities (steps, packages, docs) run on `build-<distro>`: the build hosts;
// - orchestrator activities (build numbers, locks, repository publishing) run on the orchestrator's
//   queue, beside the workflows: they need a Temporal client, the signing key and the buckets, not a distro.
import fs from 'node:fs';
import type { Client } from '@temporalio/client';
import { parseS3Url, type ConveyorConfig, type Env } from '../config/conveyor';
import { createControlActivities } from './control';
import { createRunStep } from './exec/run-step';
import { createSandboxHost, type SandboxHost } from './exec/sandbox';
import { createFleetActivities, defaultBaseDir } from './fleet';
import { createRunE2e } from './fleet/e2e';
import { createGithubActivities } from './github/commit-status';
import { createGitActivities } from './git/ancestry';
import { createGitAuth } from './git/auth';
import { createReleaseActivities } from './git/release';
import { createPackagingActivities } from './packaging';
import { createRepositoryActivities } from './repository';
import type { AwsClients } from './storage/s3';

export interface ActivityDeps {
  config: ConveyorConfig;
  aws: AwsClients;
}

/** The build worker's sandbox for repository steps (activities/exec/sandbox.ts); it probes once. */
export function builderSandbox(config: ConveyorConfig): SandboxHost {
  return createSandboxHost({ uid: config.sandbox.uid, gid: config.sandbox.gid, workspaceRoot: config.workspace });
}

export function createBuildActivities({
  config,
  aws,
  env = process.env,
  sandbox = builderSandbox(config),
}: ActivityDeps & { env?: Env; sandbox?: SandboxHost }) {
  const artifacts = parseS3Url(config.storage.artifacts);
  const deps = {
    s3: aws.s3,
    artifactsBucket: artifacts.bucket,
    artifactsPrefix: artifacts.prefix,
    workspaceRoot: config.workspace,
    gitAuth: createGitAuth(config, env),
    // One per worker: it probes once what isolation this machine allows.
    sandbox,
  };
  return {
    runStep: createRunStep(deps),
    ...createPackagingActivities(deps),
    ...createGitActivities(deps),
    ...createFleetActivities({
      ec2: aws.ec2,
      ssm: aws.ssm,
      s3: aws.s3,
      artifactsBucket: artifacts.bucket,
      artifactsPrefix: artifacts.prefix,
      hostsDir: config.fleet?.hostsDir,
      baseDir: config.fleet?.hostsDir ? defaultBaseDir() : undefined,
      ssh: config.fleet?.ssh,
      workDir: config.workspace,
    }),
    runE2e: createRunE2e({ ...deps, hostsDir: config.fleet?.hostsDir }),
    ...createReleaseActivities({ workspaceRoot: config.workspace, token: () => env[config.github.tokenEnv] }),
  };
}

export function createOrchestratorActivities({
  config,
  aws,
  client,
  env = process.env,
}: ActivityDeps & { client: Client; env?: Env }) {
  return {
    ...createControlActivities({ client, taskQueue: config.temporal.taskQueue }),
    // The token is read from the env var named in config at each call, never stored or logged.
    ...createGithubActivities({ apiUrl: config.github.apiUrl, token: () => env[config.github.tokenEnv] }),
    ...createRepositoryActivities({
      s3: aws.s3,
      artifactsBucket: parseS3Url(config.storage.artifacts).bucket,
      buckets: {
        staging: parseS3Url(config.storage.staging).bucket,
        production: parseS3Url(config.storage.production).bucket,
      },
      prefixes: {
        staging: parseS3Url(config.storage.staging).prefix,
        production: parseS3Url(config.storage.production).prefix,
      },
      keepGenerationsHours: config.storage.keepGenerationsHours,
      validDays: validDaysOf(config),
      multipartThresholdBytes: Math.round(config.storage.multipartThresholdMB * 1024 * 1024),
      signingKey: () => signingKeyOf(config, env),
      workDir: config.workspace,
    }),
  };
}

function validDaysOf(config: ConveyorConfig): { staging?: number; production?: number } | undefined {
  const v = config.signing?.validDays;
  return typeof v === 'number' ? { staging: v, production: v } : v;
}

/** The armored private signing key, read when needed so it never sits in a long-lived object or a log. */
export function signingKeyOf(config: ConveyorConfig, env: Env = process.env): string {
  const s = config.signing;
  if (s?.keyEnv) {
    const key = env[s.keyEnv];
    if (!key) throw new Error(`signing.keyEnv names ${s.keyEnv}, which is not set`);
    return key;
  }
  if (s?.keyFile) {
    try {
      return fs.readFileSync(s.keyFile, 'utf8');
    } catch (err) {
      throw new Error(
        `cannot read the signing key ${s.keyFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
  }
  throw new Error('no signing key configured: set signing.keyFile or signing.keyEnv in conveyor.yml');
}

export type BuildActivities = ReturnType<typeof createBuildActivities>;
export type OrchestratorActivities = ReturnType<typeof createOrchestratorActivities>;
