// Activity factories: dependencies are injected, workflows see only the types of the results
// through `proxyActivities` (import type), so test doubles cannot drift from the real signatures.
// Two sets, two kinds of worker:
// - build activities (steps, packages, docs, e2e) run on `build-<distro>`: the build hosts. They run
//   repository code, so they get nothing that code could use: no GitHub token, no signing key, no
//   SSH settings, no local hosts' directory. Their Temporal client serves one purpose: the e2e
//   step's host-exec relay sends its requests as Updates to the verify stage of the same run.
// - orchestrator activities (build numbers, locks, signing rpms at package time, repository
//   publishing, commit statuses, chat messages, the
//   fleet's EC2/SSH/SSM/local-host work, git ancestry, release tags pushed with the token) run on
//   the orchestrator's queue, beside the workflows, on workers that never run repository code.
import fs from 'node:fs';
import type { Client } from '@temporalio/client';
import type { HostExecRequest, HostExecResult } from '../common/host-exec';
import { MessageNames } from '../common/message-names';
import { chatCredentialEnvNames, parseS3Url, type ConveyorConfig, type Env } from '../config/conveyor';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../common/failures';
import { createChatActivities } from './chat/send-chat-message';
import { createControlActivities } from './control';
import type { LeaseRef } from './repository/types';
import { createRunStep } from './exec/run-step';
import { createSandboxHost, type SandboxHost } from './exec/sandbox';
import { createFleetActivities, defaultBaseDir } from './fleet';
import { createCollectExamples } from './examples/collect-examples';
import { createRunE2e } from './fleet/e2e';
import { createGithubActivities } from './github/commit-status';
import { createGitActivities } from './git/ancestry';
import { createGitAuth } from './git/auth';
import { createReleaseActivities } from './git/release';
import { createPackagingActivities } from './packaging';
import { createRepositoryActivities } from './repository';
import type { AwsClients } from './storage/s3';
import { auditTarget, createAuditActivities } from './audit';

export interface ActivityDeps {
  config: ConveyorConfig;
  aws: AwsClients;
}

/** The build worker's sandbox for repository steps (activities/exec/sandbox.ts); it probes once. */
export function builderSandbox(config: Pick<ConveyorConfig, 'sandbox' | 'workspace'>): SandboxHost {
  return createSandboxHost({ uid: config.sandbox.uid, gid: config.sandbox.gid, workspaceRoot: config.workspace });
}

/** What a builder is given: storage, workspace, the sandbox settings and the repositories' checkout
 * settings. No fleet settings (hosts directory, SSH), no EC2/SSM client, and of `env` only the
 * variables that checkout credentials name (activities/git/auth.ts): never the GitHub token or the
 * signing key. */
export interface BuildActivityDeps {
  config: Pick<ConveyorConfig, 'storage' | 'workspace' | 'repositories' | 'github' | 'sandbox'>;
  aws: Pick<AwsClients, 's3'>;
  /** For the e2e host-exec relay only: Updates to the verify stage of the step's own run. */
  client: Client;
  env?: Env;
  sandbox?: SandboxHost;
}

export function createBuildActivities({
  config,
  aws,
  client,
  env = process.env,
  sandbox = builderSandbox(config),
}: BuildActivityDeps) {
  const artifacts = parseS3Url(config.storage.artifacts);
  const deps = {
    s3: aws.s3,
    artifactsBucket: artifacts.bucket,
    artifactsPrefix: artifacts.prefix,
    workspaceRoot: config.workspace,
    gitAuth: createGitAuth(config, checkoutEnv(config, env)),
    // One per worker: it probes once what isolation this machine allows.
    sandbox,
    onStart: async (stageWorkflowId: string, step: string) => {
      await client.workflow.getHandle(stageWorkflowId).signal(MessageNames.stepStarted, { step });
    },
  };
  return {
    runStep: createRunStep(deps),
    ...createPackagingActivities(deps),
    collectExamples: createCollectExamples(deps),
    runE2e: createRunE2e({
      ...deps,
      forwardHostExec: (stageWorkflowId, req) =>
        client.workflow
          .getHandle(stageWorkflowId)
          .executeUpdate<HostExecResult, [HostExecRequest]>(MessageNames.hostExec, { args: [req] }),
    }),
  };
}

export function createOrchestratorActivities({
  config,
  aws,
  client,
  env = process.env,
}: ActivityDeps & { client: Client; env?: Env }) {
  const artifacts = parseS3Url(config.storage.artifacts);
  return {
    ...createControlActivities({ client, taskQueue: config.temporal.taskQueue }),
    // The audit trail of operator actions, kept outside the runs' histories (activities/audit/).
    ...createAuditActivities({ s3: aws.s3, target: auditTarget(config) }),
    ...createGitActivities({ workspaceRoot: config.workspace, gitAuth: createGitAuth(config, env) }),
    ...createReleaseActivities({
      workspaceRoot: config.workspace,
      token: () => env[config.github.tokenEnv],
      gitAuth: createGitAuth(config, env),
    }),
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
    // The token is read from the env var named in config at each call, never stored or logged.
    ...createGithubActivities({ apiUrl: config.github.apiUrl, token: () => env[config.github.tokenEnv] }),
    // Chat credentials by env var name, read at each call; only names this config gives.
    ...createChatActivities({
      apiUrl: config.chat?.slack.apiUrl ?? 'https://slack.com/api',
      allowedEnv: new Set(chatCredentialEnvNames(config)),
      env,
    }),
    ...createRepositoryActivities({
      s3: aws.s3,
      artifactsBucket: artifacts.bucket,
      artifactsPrefix: artifacts.prefix,
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
      nextSigningKey: () => nextSigningKeyOf(config, env),
      workDir: config.workspace,
      fence: leaseFence(client),
    }),
  };
}

/**
 * Fencing of publishes: right before the switch (the first signed file), the publisher asks the
 * lock entity whether its lease is still the current one. A holder whose lease passed (its
 * workflow stalled longer than the lease, the lock moved on) stops with LeaseLost instead of
 * switching what readers see over its successor's work. The local S3 endpoint's conditional
 * writes are check-then-write (shared FACTS), so this check, not the storage, is the fence.
 */
export function leaseFence(client: Client): (input: { lease?: LeaseRef }) => Promise<void> {
  const control = createControlActivities({ client, taskQueue: '' });
  return async ({ lease }) => {
    if (!lease) return; // publishes of runs recorded before fencing
    if (!(await control.leaseHeld(lease))) {
      throw ApplicationFailure.create({
        type: FailureType.LeaseLost,
        nonRetryable: true,
        message: `the lease on ${lease.lockId} passed before the switch: another publish holds the lock now; nothing was switched (retry the stage)`,
      });
    }
  };
}

function validDaysOf(config: ConveyorConfig): { staging?: number; production?: number } | undefined {
  const v = config.signing?.validDays;
  return typeof v === 'number' ? { staging: v, production: v } : v;
}

/** Only the env vars that the repositories' checkout credentials name. */
function checkoutEnv(config: Pick<ConveyorConfig, 'repositories'>, env: Env): Env {
  const names = config.repositories.flatMap((r) => [r.checkout?.tokenEnv, r.checkout?.githubApp?.privateKeyEnv]);
  const out: Env = {};
  for (const n of names) if (n && env[n] !== undefined) out[n] = env[n];
  return out;
}

function readKey(what: string, keyEnv: string | undefined, keyFile: string | undefined, env: Env): string | undefined {
  if (keyEnv) {
    const key = env[keyEnv];
    if (!key) throw new Error(`${what}Env names ${keyEnv}, which is not set`);
    return key;
  }
  if (keyFile) {
    try {
      return fs.readFileSync(keyFile, 'utf8');
    } catch (err) {
      throw new Error(`cannot read the signing key ${keyFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  return undefined;
}

/** The armored private signing key, read when needed so it never sits in a long-lived object or a log. */
export function signingKeyOf(config: ConveyorConfig, env: Env = process.env): string {
  const s = config.signing;
  const key = readKey('signing.key', s?.keyEnv, s?.keyFile, env);
  if (!key) throw new Error('no signing key configured: set signing.keyFile or signing.keyEnv in conveyor.yml');
  return key;
}

/** A rotation's new key (signing.nextKeyFile / nextKeyEnv), or undefined outside a rotation. */
export function nextSigningKeyOf(config: ConveyorConfig, env: Env = process.env): string | undefined {
  return readKey('signing.nextKey', config.signing?.nextKeyEnv, config.signing?.nextKeyFile, env);
}

export type BuildActivities = ReturnType<typeof createBuildActivities>;
export type OrchestratorActivities = ReturnType<typeof createOrchestratorActivities>;
