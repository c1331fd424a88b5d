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
// smoke checks moved queue, hence trustedQueue(). The check that every host still runs this build
// reads all hosts and packages at once (patch verify-version-checks-side-by-side), no longer one
// after the other.
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
import { formatMismatch, type ExampleMismatch, type ExampleProblem } from '../../common/doc-examples';
import { FailureType, type CommandFailureDetails } from '../../common/failures';
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
  /** `e2e: { examples }`: the documented examples, all matched (a mismatch fails the stage). */
  examples?: ExamplesReport;
}

export interface ExamplesReport {
  files: string[];
  examples: number;
  hosts: { host: string; distro: string; passed: number; logKey: string }[];
}

/** The failure details of a verify stage failed by its examples: the pipeline's usual fields
 * (step, exit code, log key, tail with every mismatch's diff) and each mismatch with its place. */
export interface ExamplesFailureDetails extends CommandFailureDetails {
  mismatches: ExampleMismatch[];
  problems: ExampleProblem[];
}

function versionEnv(input: VerifyStageInput): Record<string, string> {
  return {
    CONVEYOR_VERSION: input.version,
    CONVEYOR_BUILD: String(input.build),
    CONVEYOR_PACKAGE_VERSION: `${input.version}-${input.build}`,
  };
}

export const VERSION_CHECKS_SIDE_BY_SIDE_PATCH = 'verify-version-checks-side-by-side';

/** Fails the stage, naming the hosts, when one no longer runs `<version>-<build>` of a package. */
async function stillThisBuild(
  input: VerifyStageInput,
  hostsOf: (distro: string) => Pick<OrchestratorActivities, 'hostVersion'>,
): Promise<void> {
  const wanted = `${input.version}-${input.build}`;
  const moved: string[] = [];
  const checks = input.hosts.flatMap((g) =>
    g.hosts.flatMap((host) =>
      (input.packages ?? []).map((packageName) => ({
        distro: g.distro,
        host,
        packageName,
        format: input.repository.distroSpecs[g.distro]?.format ?? 'deb',
      })),
    ),
  );
  const report = (c: (typeof checks)[number], version: string | null) => {
    if (version !== wanted) moved.push(`${c.host.name} runs ${c.packageName} ${version ?? '(none)'}`);
  };
  if (checks.length > 1 && patched(VERSION_CHECKS_SIDE_BY_SIDE_PATCH)) {
    // Every host and package at once (each check is one short read on one host), reported in order.
    const versions = await Promise.all(
      checks.map((c) => hostsOf(c.distro).hostVersion({ host: c.host, packageName: c.packageName, format: c.format })),
    );
    checks.forEach((c, i) => report(c, versions[i].version));
  } else {
    for (const c of checks) {
      const { version } = await hostsOf(c.distro).hostVersion({
        host: c.host,
        packageName: c.packageName,
        format: c.format,
      });
      report(c, version);
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
  const { smoke, e2e: e2eStep } = input.repository.steps;
  // A command runs on a build worker against the hosts; `{ examples }` is the built-in kind.
  const e2e = typeof e2eStep === 'string' ? e2eStep : undefined;
  const examples = typeof e2eStep === 'object' ? e2eStep.examples : undefined;
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
  // Only runs configured with `{ examples }` take this path, and no history before the patch
  // has one; the marker keeps the rule that every new command sequence is patched.
  if (examples && patched('e2e-examples')) {
    const report = await runDocExamples(input, examples, hostsOf, builder);
    return { smoke: checks, examples: report };
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

/** Tail of a failure: at most this many characters of mismatch diffs (all are in the details). */
const EXAMPLES_TAIL_CHARS = 8000;

function examplesFailure(message: string, details: ExamplesFailureDetails): ApplicationFailure {
  let tail = '';
  const parts = [
    ...details.problems.map((p) => `${p.line > 0 ? `${p.file}:${p.line}` : p.file}: ${p.message}`),
    ...details.mismatches.map(formatMismatch),
  ];
  let shown = 0;
  for (const part of parts) {
    if (tail.length + part.length > EXAMPLES_TAIL_CHARS && shown > 0) break;
    tail += `${shown > 0 ? '\n\n' : ''}${part.slice(0, EXAMPLES_TAIL_CHARS)}`;
    shown++;
  }
  if (shown < parts.length) tail += `\n\n(${parts.length - shown} more: see the stage's failure details and logs)`;
  return ApplicationFailure.create({
    type: FailureType.VerifyFailed,
    nonRetryable: true,
    message,
    details: [{ ...details, tail }],
  });
}

/** `e2e: { examples }`: the documents' marked blocks at the run's commit (read on a build worker:
 * the documents are untrusted) run on the first host of each distro, through its executor on the
 * orchestrator's queue. Any problem in the documents or any mismatch fails the stage with every
 * file:line. */
async function runDocExamples(
  input: VerifyStageInput,
  patterns: string[],
  hostsOf: (distro: string) => Pick<OrchestratorActivities, 'runExamples'>,
  builder: (distro: string) => Pick<BuildActivities, 'collectExamples'>,
): Promise<ExamplesReport> {
  const me = workflowInfo().workflowId;
  const distro = input.hosts[0]?.distro ?? input.repository.distros[0];
  const watched = workerWaitNotice(buildQueue(distro), input.repository.workerWaitNoticeSeconds);
  const docs = await watched(
    builder(distro).collectExamples({ cloneUrl: input.repository.cloneUrl, sha: input.sha, patterns }),
  );
  const none = { step: 'e2e', exitCode: null, signal: null, logKey: '', tail: '', mismatches: [] };
  if (docs.problems.length > 0) {
    const at = docs.problems.map((p) => (p.line > 0 ? `${p.file}:${p.line}` : p.file));
    throw examplesFailure(`documented examples: ${docs.problems.length} problem(s) at ${at.join(', ')}`, {
      ...none,
      problems: docs.problems,
    });
  }
  if (docs.examples.length === 0) {
    throw examplesFailure(
      `documented examples: no \`conveyor-example\` block in ${docs.files.join(', ')} (patterns ${patterns.join(' ')})`,
      { ...none, problems: [] },
    );
  }
  const targets = input.hosts.filter((g) => g.hosts.length > 0).map((g) => ({ distro: g.distro, host: g.hosts[0] }));
  if (targets.length === 0) {
    throw examplesFailure('documented examples: no staging host to run them on', { ...none, problems: [] });
  }
  const runs = await Promise.all(
    targets.map(async ({ distro: d, host }) => ({
      distro: d,
      r: await hostsOf(d).runExamples({
        host,
        examples: docs.examples,
        env: { ...stepEnvFor(input, d), ...versionEnv(input), CONVEYOR_HOST: host.name },
        logKey: `logs/${me}/examples-${host.name}.log`,
        timeoutSeconds: input.repository.stepTimeoutSeconds,
      }),
    })),
  );
  const mismatches = runs.flatMap(({ r }) => r.mismatches);
  if (mismatches.length > 0) {
    const failedOn = runs.find(({ r }) => r.mismatches.length > 0)!.r;
    const at = [...new Set(mismatches.map((m) => `${m.file}:${m.line}`))];
    throw examplesFailure(
      `documented examples: ${mismatches.length} mismatch(es) at ${at.join(', ')} on ${[...new Set(mismatches.map((m) => m.host))].join(', ')}`,
      { step: 'e2e', exitCode: 1, signal: null, logKey: failedOn.logKey, tail: '', mismatches, problems: [] },
    );
  }
  return {
    files: docs.files,
    examples: docs.examples.length,
    hosts: runs.map(({ distro: d, r }) => ({ host: r.host, distro: d, passed: r.passed, logKey: r.logKey })),
  };
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
