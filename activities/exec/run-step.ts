// runStep: check out the commit into a fresh workspace and run one configured step in it with
// `sh -c`. The command is trusted config; webhook values reach it only as CONVEYOR_* env vars.
// Idempotent: every attempt gets a new workspace and overwrites the same log key.
//
// withStepWorkspace is the reusable part (the package, docs and e2e activities run their steps
// through it): the sandbox (sandbox.ts: refused with the reason when the worker cannot make one,
// unless the repository says `sandbox: { mode: none }`), the workspace volume with its disk limit,
// checkout, minimal env, heartbeats, process-tree kill on cancellation, the log uploaded under the
// stage's workflow ID whether the work succeeds or fails, and a non-retryable CommandFailed with
// the exit code and tail (naming the sandbox limit the step hit, if any). The log is uploaded
// before the error leaves the activity, so the logKey in a failure's details always names an
// existing object.
//
// Hazard: after a sandboxed step ran, everything in the workspace is the step's work, hostile. The
// builder reads files from it (lstat first, no symlink followed) but never runs git or a build
// tool in the checkout again: `.git/config` alone could make root run a command of the step's.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { S3Client } from '@aws-sdk/client-s3';
import { FailureType, type CommandFailureDetails } from '../../common/failures';
import { sandboxOf, stepHasNetwork } from '../../common/sandbox';
import type { RunStepInput, SandboxSpec, StepResult } from '../../common/types';
import type { GitAuth } from '../git/auth';
import { checkout } from '../git/checkout';
import { putText } from '../storage/s3';
import { runProcess, stepEnv, type RunOutcome } from './process';
import {
  createSandboxHost,
  INSIDE,
  sandboxEnv,
  sandboxRefusal,
  type SandboxHost,
  type StepRunOptions,
} from './sandbox';
import type { SandboxVolume } from './sandbox-volume';

export type { StepRunOptions } from './sandbox';

export interface RunStepDeps {
  s3: S3Client;
  artifactsBucket: string;
  artifactsPrefix: string;
  workspaceRoot?: string;
  /** Credentials for private repositories, resolved on this worker (activities/git/auth.ts). */
  gitAuth?: GitAuth;
  /** The worker's sandbox (one per worker: it probes once). Absent: a default one per workspace root. */
  sandbox?: SandboxHost;
  /** Tells the stage workflow a builder has taken the step (workflows/worker-wait.ts); best effort. */
  onStart?: (stageWorkflowId: string, step: string) => Promise<void>;
}

const defaultHosts = new Map<string, SandboxHost>();

function defaultWorkspaceRoot(): string {
  return path.join(os.tmpdir(), 'conveyor-work');
}

/** The sandbox of callers that inject none (scripts, tests building activities by hand). */
export function defaultSandboxHost(workspaceRoot = defaultWorkspaceRoot()): SandboxHost {
  let host = defaultHosts.get(workspaceRoot);
  if (!host) {
    host = createSandboxHost({ workspaceRoot });
    defaultHosts.set(workspaceRoot, host);
  }
  return host;
}

const HEARTBEAT_MS = 5000;

export function logKey(prefix: string, stageWorkflowId: string, step: string): string {
  return `${prefix}logs/${stageWorkflowId}/${step}.log`;
}

/** What activity code needs of Temporal's Context. Outside an activity (scripts, integration tests
 * calling the functions directly) `Context.current()` throws; there heartbeats go nowhere and
 * nothing cancels. */
export interface ActivityHooks {
  heartbeat(details?: unknown): void;
  signal?: AbortSignal;
  log: { info(message: string, meta?: Record<string, unknown>): void };
}

export function activityHooks(): ActivityHooks {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return { heartbeat: () => undefined, log: { info: () => undefined } };
  }
  return { heartbeat: (d) => ctx.heartbeat(d), signal: ctx.cancellationSignal, log: ctx.log };
}

export interface StepWorkspaceSpec {
  /** The stage child's workflow ID; the log is kept under it. */
  stageWorkflowId: string;
  /** Names the log (`<step>.log`) and the workspace directory. */
  step: string;
  cloneUrl: string;
  sha: string;
  /** owner/repo, for messages. */
  repository?: string;
  /** The repository's sandbox settings; the defaults (sandboxed, no network) when absent. */
  sandbox?: SandboxSpec;
}

export interface StepWorkspace {
  /** This attempt's private directory (removed afterwards), never visible to the step. */
  dir: string;
  /** The checkout of the exact sha (host path; the step sees it at CONVEYOR_WORKSPACE). */
  src: string;
  /** CONVEYOR_OUT on the host: empty when the step starts. */
  out: string;
  /** How the step runs: `none` only when the repository's conveyor.yml says so. */
  sandbox: SandboxSpec['mode'];
  /** A further directory the step may write (e.g. CONVEYOR_ROOT): its host path, and the path to
   * hand to the step (they differ in the sandbox). Made empty and owned by the sandbox uid. */
  writableDir: (name: string) => Promise<{ host: string; inside: string }>;
  headSha: string;
  logKey: string;
  hooks: ActivityHooks;
  /** Appends a line of Conveyor's own to the step's log (what it did with the step's output). */
  note: (line: string) => void;
  /** Runs a configured command with `sh -c` in `src`, in the sandbox. Resolves only on exit code 0;
   * otherwise a non-retryable CommandFailed (or Temporal's CancelledFailure when the activity was
   * cancelled). `opts.binds` are mounted only in the sandbox: with `sandbox: none` (`ws.sandbox`)
   * nothing is mounted and the caller hands the step the source paths instead. */
  run: (
    command: string,
    env: Record<string, string>,
    timeoutSeconds?: number,
    opts?: StepRunOptions,
  ) => Promise<RunOutcome>;
}

export async function withStepWorkspace<T>(
  deps: RunStepDeps,
  spec: StepWorkspaceSpec,
  work: (ws: StepWorkspace) => Promise<T>,
): Promise<T> {
  // Heartbeat every few seconds for the whole attempt, with the latest details the work reported:
  // checkout, an unshallow fetch, rpmbuild or a large upload report no progress of their own, and
  // the stages' heartbeat timeout (30 s) must not take them for a dead worker.
  const outer = activityHooks();
  // Not awaited for long and never failing the step: the notice is for people, not for the run.
  if (deps.onStart) {
    await Promise.race([
      deps.onStart(spec.stageWorkflowId, spec.step).catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, 2000).unref()),
    ]);
  }
  let last: unknown = { phase: 'start' };
  const hooks: ActivityHooks = {
    ...outer,
    heartbeat: (d) => {
      last = d;
      outer.heartbeat(d);
    },
  };
  const signal = hooks.signal;
  const settings = sandboxOf(spec.sandbox);
  const sandboxed = settings.mode === 'bwrap';
  const host = deps.sandbox ?? defaultSandboxHost(deps.workspaceRoot);
  if (sandboxed) {
    const probe = await host.probe();
    if (!probe.ok) throw sandboxRefusal(spec.step, spec.repository, probe.reason);
  }
  const root = deps.workspaceRoot ?? defaultWorkspaceRoot();
  fs.mkdirSync(root, { recursive: true });
  const dir = fs.mkdtempSync(path.join(root, `${spec.step}-`));
  // bwrap resolves the bind sources in here as the sandbox uid: it may pass, not list.
  if (sandboxed) fs.chmodSync(dir, 0o711);
  const logFile = path.join(dir, `${spec.step}.log`);
  fs.writeFileSync(logFile, '', { mode: 0o600 });
  const key = logKey(deps.artifactsPrefix, spec.stageWorkflowId, spec.step);
  const uploadLog = async () => {
    if (!fs.existsSync(logFile)) return;
    const body = fs.readFileSync(logFile);
    if (signal?.aborted) {
      // Cancelled: keep what the step printed if S3 answers soon; the cancellation is what matters.
      await putText(deps.s3, deps.artifactsBucket, key, body, undefined, AbortSignal.timeout(10_000)).catch(
        () => undefined,
      );
    } else {
      await putText(deps.s3, deps.artifactsBucket, key, body, undefined, signal);
    }
  };
  const note = (line: string) => fs.appendFileSync(logFile, `conveyor: ${line}\n`);
  const beat = setInterval(() => outer.heartbeat(last), HEARTBEAT_MS);
  beat.unref();
  let volume: SandboxVolume | undefined;
  try {
    hooks.heartbeat({ phase: 'checkout' });
    // The checkout lives in the volume: it counts against the disk limit like all the step writes.
    volume = sandboxed ? await host.volume(dir, settings.limits, signal) : undefined;
    const base = volume?.path ?? dir;
    const src = path.join(base, 'src');
    const out = path.join(base, 'out');
    const headSha = await checkout(spec.cloneUrl, spec.sha, src, signal, deps.gitAuth);
    fs.mkdirSync(out);
    // The workspace goes to the sandbox uid right before the step runs, not now: the work may run
    // git in the checkout first (the project version), and git refuses a repository of another user.
    let owned = false;
    const network = stepHasNetwork(settings, spec.step);
    if (sandboxed) {
      const l = settings.limits;
      note(
        `sandbox: bubblewrap, network ${network ? 'on (slirp4netns, the builder unreachable)' : 'off'}, ` +
          `limits ${l.memoryMb} MB memory, ${l.pids} processes, ${l.diskMb} MB disk` +
          `${l.cpuSeconds ? `, ${l.cpuSeconds} s CPU` : ''}`,
      );
    } else {
      note("sandbox: NONE (conveyor.yml sandbox.mode: none): this step runs unsandboxed as the worker's user");
    }
    const extra: { host: string; inside: string }[] = [];
    const ws: StepWorkspace = {
      dir,
      src,
      out,
      headSha,
      logKey: key,
      hooks,
      note,
      sandbox: settings.mode,
      writableDir: async (name) => {
        if (!/^[a-z][a-z0-9-]*$/.test(name) || ['src', 'out', 'vol'].includes(name)) {
          throw new Error(`not a name for a workspace directory: ${JSON.stringify(name)}`);
        }
        const made = { host: path.join(base, name), inside: sandboxed ? INSIDE.dir(name) : path.join(base, name) };
        fs.mkdirSync(made.host);
        if (sandboxed) {
          if (owned) await host.own([made.host]);
          extra.push(made);
        }
        return made;
      },
      run: async (command, env, timeoutSeconds, opts) => {
        fs.appendFileSync(logFile, `$ ${command}\n`);
        const common = {
          logFile,
          signal,
          heartbeatMs: HEARTBEAT_MS,
          onTick: (elapsedMs: number, bytes: number) => hooks.heartbeat({ phase: 'run', elapsedMs, bytes }),
          timeoutMs: timeoutSeconds ? timeoutSeconds * 1000 : undefined,
        };
        let outcome: RunOutcome;
        let limitsHit: string[] = [];
        if (!sandboxed || !volume) {
          if (opts?.binds?.length) note('sandbox: none, so nothing is mounted for this step (binds ignored)');
          outcome = await runProcess('sh', ['-c', command], {
            ...common,
            cwd: src,
            env: stepEnv({ ...env, CONVEYOR_OUT: out, CONVEYOR_WORKSPACE: src }),
          });
        } else {
          if (!owned) {
            await host.own([src, out, ...extra.map((e) => e.host)]);
            owned = true;
          }
          const ids = await host.uid();
          const r = await host.run({
            step: spec.step,
            command,
            env: sandboxEnv(env, ids.uid),
            volume,
            mounts: [{ host: src, inside: INSIDE.src }, { host: out, inside: INSIDE.out }, ...extra],
            cwd: INSIDE.src,
            binds: opts?.binds,
            network,
            limits: settings.limits,
            scratch: dir,
            run: common,
          });
          outcome = r;
          limitsHit = r.limitsHit;
        }
        if (outcome.cancelled) throw new CancelledFailure(`step ${spec.step} cancelled`);
        if (limitsHit.length > 0) {
          const why = `exceeded ${limitsHit.join(' and ')}`;
          note(`step ${spec.step} ${why}`);
          throw commandFailed(spec.step, key, outcome, timeoutSeconds, why);
        }
        if (outcome.exitCode !== 0) throw commandFailed(spec.step, key, outcome, timeoutSeconds);
        return outcome;
      },
    };
    let result: T;
    try {
      result = await work(ws);
    } catch (err) {
      await uploadLog();
      throw err;
    }
    await uploadLog();
    return result;
  } finally {
    clearInterval(beat);
    await volume?.release();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function commandFailed(
  step: string,
  key: string,
  outcome: RunOutcome,
  timeoutSeconds?: number,
  limit?: string,
): ApplicationFailure {
  // The limit goes into the tail too: the stage's status shows the tail, not this message.
  const tail = limit ? `${outcome.tail.replace(/\n?$/, '\n')}conveyor: step ${step} ${limit}\n` : outcome.tail;
  const why = limit
    ? limit
    : outcome.timedOut
      ? `timed out after ${timeoutSeconds} s`
      : outcome.exitCode === null
        ? `was killed by ${outcome.signal}`
        : `exited with code ${outcome.exitCode}`;
  const details: CommandFailureDetails = {
    step,
    exitCode: outcome.exitCode,
    signal: outcome.signal,
    logKey: key,
    tail,
    ...(limit || outcome.timedOut ? { reason: why } : {}),
  };
  return ApplicationFailure.create({
    type: FailureType.CommandFailed,
    message: `step ${step} ${why}\n${lastLines(tail, 20)}`,
    nonRetryable: true,
    details: [details],
  });
}

export function createRunStep(deps: RunStepDeps) {
  return async function runStep(input: RunStepInput): Promise<StepResult> {
    const spec = { ...input, repository: input.env.CONVEYOR_REPOSITORY };
    return withStepWorkspace(deps, spec, async (ws) => {
      ws.hooks.log.info('running step', { step: input.step, sha: input.sha });
      const outcome = await ws.run(input.command, input.env, input.timeoutSeconds);
      return stepResult(input.step, ws, outcome);
    });
  };
}

/** The result of a step that exited 0 in `ws`: keys and a short tail, never the whole output. */
export function stepResult(step: string, ws: StepWorkspace, outcome: RunOutcome): StepResult {
  return {
    step,
    exitCode: 0,
    headSha: ws.headSha,
    logKey: ws.logKey,
    tail: lastLines(outcome.tail, 20),
    durationMs: outcome.durationMs,
  };
}

export function lastLines(text: string, n: number): string {
  const lines = text.replace(/\n$/, '').split('\n');
  return lines.slice(-n).join('\n');
}
