// Verify stage (`…/verify`): the repository's `smoke` step on every upgraded staging host through
// its executor (CONVEYOR_HOST set; on the orchestrator's queue, like all host work), then, when all
// pass, its `e2e` step on a build worker (it is repository code) against the hosts: CONVEYOR_HOSTS
// lists them, CONVEYOR_HOST_EXEC runs a command on one. Logs go to the artifacts bucket; the stage
// returns keys and tails, and a failure names host, exit code and tail.
//
// Host-exec: the e2e step reaches the hosts only through this workflow. The builder's relay sends
// each request as the `hostExec` Update (common/host-exec.ts); the validator accepts only this
// run's hosts, only while its e2e step runs, within the per-run limits; the handler runs
// `execOnHost` on the orchestrator's queue. So every host command of an e2e step is in this
// history, and the step itself never holds a way to reach a host.
//
// Replay: registering the handler and waiting for handlers add no commands; `execOnHost` is only
// scheduled by an Update, which no history recorded before it contains, so it needs no patch. The
// smoke checks moved queue, hence trustedQueue().
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { BuildActivities, OrchestratorActivities } from '../../activities';
import type { Host } from '../../activities/fleet';
import { FailureType } from '../../common/failures';
import {
  HOST_EXEC_REFUSED,
  HostExecLimits,
  base64Bytes,
  hostExecRefusal,
  type HostExecRequest,
  type HostExecResult,
} from '../../common/host-exec';
import { buildQueue } from '../../common/queues';
import type { RepositorySpec } from '../../common/types';
import { hostExecUpdate } from '../messages';
import { messageOf, rootApplicationFailure, stepEnvFor } from '../support';
import { trustedQueue } from '../trusted-queue';
import { workerWaitNotice } from '../worker-wait';

export interface VerifyStageInput {
  pipelineId: string;
  repository: RepositorySpec;
  branch: string;
  sha: string;
  /** The project's version (CONVEYOR_VERSION) and the build number (CONVEYOR_BUILD); the packages
   * are versioned `<version>-<build>` (CONVEYOR_PACKAGE_VERSION). */
  version: string;
  build: number;
  hosts: { distro: string; hosts: Host[] }[];
  /** The package names deployed: each host is checked for `<version>-<build>` of them first. */
  packages?: string[];
}

export interface HostCheck {
  host: string;
  distro: string;
  exitCode: number;
  logKey: string;
  tail: string;
}

export interface VerifyStageResult {
  smoke: HostCheck[];
  e2e?: { logKey: string; tail: string };
}

function versionEnv(input: VerifyStageInput): Record<string, string> {
  return {
    CONVEYOR_VERSION: input.version,
    CONVEYOR_BUILD: String(input.build),
    CONVEYOR_PACKAGE_VERSION: `${input.version}-${input.build}`,
  };
}

/** Fails the stage, naming the hosts, when one no longer runs `<version>-<build>` of a package. */
async function stillThisBuild(
  input: VerifyStageInput,
  hostsOf: (distro: string) => Pick<OrchestratorActivities, 'hostVersion'>,
): Promise<void> {
  const wanted = `${input.version}-${input.build}`;
  const moved: string[] = [];
  for (const g of input.hosts) {
    const format = input.repository.distroSpecs[g.distro]?.format ?? 'deb';
    for (const host of g.hosts) {
      for (const packageName of input.packages ?? []) {
        const { version } = await hostsOf(g.distro).hostVersion({ host, packageName, format });
        if (version !== wanted) moved.push(`${host.name} runs ${packageName} ${version ?? '(none)'}`);
      }
    }
  }
  if (moved.length > 0) {
    throw ApplicationFailure.create({
      type: FailureType.VerifyFailed,
      nonRetryable: true,
      message: `not verifying ${wanted}: ${moved.join(', ')} (another deploy changed the hosts after this one)`,
    });
  }
}

export async function verifyStage(input: VerifyStageInput): Promise<VerifyStageResult> {
  const me = workflowInfo().workflowId;
  const { smoke, e2e } = input.repository.steps;
  const retry = { maximumAttempts: 3, nonRetryableErrorTypes: [FailureType.CommandFailed, FailureType.BadConfig] };
  const timeouts = {
    startToCloseTimeout: `${input.repository.stepTimeoutSeconds + 300} seconds`,
    heartbeatTimeout: '1 minute',
  } as const;
  const hostsOf = (distro: string) =>
    proxyActivities<OrchestratorActivities>({ taskQueue: trustedQueue(distro), ...timeouts, retry });
  const builder = (distro: string) =>
    proxyActivities<BuildActivities>({ taskQueue: buildQueue(distro), ...timeouts, retry });

  // Registered first, so that a request before the e2e step gets the validator's reason.
  const hostExec = e2e ? serveHostExec(input) : undefined;
  // The deploy lock is released before verify: a newer deploy may have changed the hosts since.
  // Every host must still run this build, or its smoke and e2e would test another one.
  if (input.packages?.length && patched('verify-version-check')) await stillThisBuild(input, hostsOf);
  const checks: HostCheck[] = [];
  if (smoke) {
    const all = input.hosts.flatMap((g) => g.hosts.map((host) => ({ distro: g.distro, host })));
    const results = await Promise.all(
      all.map(async ({ distro, host }) => {
        const r = await hostsOf(distro).runOnHost({
          host,
          command: smoke,
          env: { ...stepEnvFor(input, distro), ...versionEnv(input), CONVEYOR_HOST: host.name },
          logKey: `logs/${me}/smoke-${host.name}.log`,
          timeoutSeconds: input.repository.stepTimeoutSeconds,
        });
        return { host: host.name, distro, exitCode: r.exitCode, logKey: r.logKey, tail: r.tail };
      }),
    );
    checks.push(...results);
    const failed = results.filter((r) => r.exitCode !== 0);
    if (failed.length > 0) {
      throw ApplicationFailure.create({
        type: FailureType.VerifyFailed,
        message: `smoke failed on ${failed.map((f) => `${f.host} (exit ${f.exitCode})`).join(', ')}`,
        nonRetryable: true,
        details: [
          {
            step: 'smoke',
            exitCode: failed[0].exitCode,
            signal: null,
            logKey: failed[0].logKey,
            tail: failed.map((f) => `--- ${f.host}\n${f.tail}`).join('\n'),
          },
        ],
      });
    }
  }
  let e2eResult: VerifyStageResult['e2e'];
  if (e2e && hostExec) {
    const distro = input.hosts[0]?.distro ?? input.repository.distros[0];
    // The e2e step waits on the build queue like any step: say so when no builder takes it.
    const watched = workerWaitNotice(buildQueue(distro), input.repository.workerWaitNoticeSeconds);
    hostExec.open();
    try {
      const r = await watched(
        builder(distro).runE2e({
          pipelineId: input.pipelineId,
          stageWorkflowId: me,
          stage: 'verify',
          step: 'e2e',
          command: e2e,
          cloneUrl: input.repository.cloneUrl,
          sha: input.sha,
          env: { ...stepEnvFor(input, distro), ...versionEnv(input) },
          timeoutSeconds: input.repository.stepTimeoutSeconds,
          sandbox: input.repository.sandbox,
          hosts: input.hosts.flatMap((g) => g.hosts),
        }),
      );
      e2eResult = { logKey: r.logKey, tail: r.tail };
    } finally {
      await hostExec.close();
    }
  }
  return { smoke: checks, e2e: e2eResult };
}

/** Refuses a host-exec request with a reason the e2e step prints. */
function refuse(message: string): never {
  throw ApplicationFailure.create({ type: HOST_EXEC_REFUSED, message, nonRetryable: true });
}

/**
 * The hostExec Update of this run: validator and handler (the samples' safe-message-handlers
 * pattern). Requests are accepted between open() and close() only, that is while the e2e step runs;
 * close() cancels commands still running (the step that asked for them is over) and waits until
 * every handler has finished, so the workflow never completes with an Update unanswered.
 */
function serveHostExec(input: VerifyStageInput): { open(): void; close(): Promise<void> } {
  const hosts = new Map<string, { distro: string; host: Host }>();
  for (const g of input.hosts) for (const host of g.hosts) hosts.set(host.name, { distro: g.distro, host });
  const names = [...hosts.keys()];
  let serving = false;
  let requests = 0;
  let bytes = 0;
  // Commands run in their own scope, so that close() cancels only them.
  const commands = new CancellationScope();
  const run = proxyActivities<OrchestratorActivities>({
    // A command is run at most once: it may not be idempotent, and the step sees the failure.
    retry: { maximumAttempts: 1 },
    startToCloseTimeout: `${input.repository.stepTimeoutSeconds + 120} seconds`,
    // close() waits until a cancelled command is really stopped on its host (no host command
    // outlives the stage). An activity learns of its cancellation from a heartbeat, and the SDK
    // sends heartbeats at most every 0.8 × this timeout: short, but above the executors' gaps (a
    // slow SendCommand, an SSH connect).
    heartbeatTimeout: '30 seconds',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });

  setHandler(
    hostExecUpdate,
    async (req: HostExecRequest): Promise<HostExecResult> => {
      const { distro, host } = hosts.get(req.host)!;
      requests++;
      bytes += req.stdin ? base64Bytes(req.stdin) : 0;
      try {
        const r = await commands.run(() =>
          run.execOnHost.executeWithOptions({ summary: `host-exec on ${host.name}: ${req.argv[0].slice(0, 100)}` }, [
            {
              host,
              argv: req.argv,
              ...(req.stdin ? { stdin: req.stdin } : {}),
              env: { ...stepEnvFor(input, distro), ...versionEnv(input), CONVEYOR_HOST: host.name },
              timeoutSeconds: input.repository.stepTimeoutSeconds,
            },
          ]),
        );
        bytes += base64Bytes(r.stdout) + base64Bytes(r.stderr);
        return r;
      } catch (err) {
        throw ApplicationFailure.create({
          type: 'HostExecFailed',
          message: `${req.argv[0]} on ${req.host}: ${rootApplicationFailure(err)?.message ?? messageOf(err)}`,
          nonRetryable: true,
        });
      }
    },
    {
      validator: (req: HostExecRequest): void => {
        if (!serving) refuse(`host-exec is served only while the e2e step of ${input.pipelineId} runs`);
        const why = hostExecRefusal(req, names);
        if (why) refuse(why);
        if (requests >= HostExecLimits.requestsPerRun) {
          refuse(`this run has used its ${HostExecLimits.requestsPerRun} host-exec requests`);
        }
        if (bytes >= HostExecLimits.bytesPerRun) {
          refuse(
            `this run has moved its ${HostExecLimits.bytesPerRun / 1024 / 1024} MiB of host-exec input and output`,
          );
        }
      },
    },
  );

  return {
    open: () => {
      serving = true;
    },
    close: async () => {
      serving = false;
      commands.cancel();
      await condition(allHandlersFinished);
    },
  };
}
