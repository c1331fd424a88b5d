// runStep: check out the commit into a fresh workspace and run one configured step in it with
// `sh -c`. The command is trusted config; webhook values reach it only as CONVEYOR_* env vars.
// Idempotent: every attempt gets a new workspace and overwrites the same log key.
//
// withStepWorkspace is the reusable part (the package and docs activities run their steps
// through it): checkout, minimal env, heartbeats, process-tree kill on cancellation, the log
// uploaded under the stage's workflow ID whether the work succeeds or fails, and a
// non-retryable CommandFailed with the exit code and tail. The log is uploaded before the error
// leaves the activity, so the logKey in a failure's details always names an existing object.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { S3Client } from '@aws-sdk/client-s3';
import { FailureType, type CommandFailureDetails } from '../../common/failures';
import type { RunStepInput, StepResult } from '../../common/types';
import type { GitAuth } from '../git/auth';
import { checkout } from '../git/checkout';
import { putText } from '../storage/s3';
import { runProcess, stepEnv, type RunOutcome } from './process';

export interface RunStepDeps {
  s3: S3Client;
  artifactsBucket: string;
  artifactsPrefix: string;
  workspaceRoot?: string;
  /** Credentials for private repositories, resolved on this worker (activities/git/auth.ts). */
  gitAuth?: GitAuth;
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
}

export interface StepWorkspace {
  /** This attempt's scratch directory (removed afterwards); `src` and `out` live in it. */
  dir: string;
  /** The checkout of the exact sha. */
  src: string;
  /** CONVEYOR_OUT: empty when the step starts. */
  out: string;
  headSha: string;
  logKey: string;
  hooks: ActivityHooks;
  /** Appends a line of Conveyor's own to the step's log (what it did with the step's output). */
  note: (line: string) => void;
  /** Runs a configured command with `sh -c` in `src`. Resolves only on exit code 0; otherwise a
   * non-retryable CommandFailed (or Temporal's CancelledFailure when the activity was cancelled). */
  run: (command: string, env: Record<string, string>, timeoutSeconds?: number) => Promise<RunOutcome>;
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
  let last: unknown = { phase: 'start' };
  const hooks: ActivityHooks = {
    ...outer,
    heartbeat: (d) => {
      last = d;
      outer.heartbeat(d);
    },
  };
  const signal = hooks.signal;
  const root = deps.workspaceRoot ?? path.join(os.tmpdir(), 'conveyor-work');
  fs.mkdirSync(root, { recursive: true });
  const dir = fs.mkdtempSync(path.join(root, `${spec.step}-`));
  const src = path.join(dir, 'src');
  const out = path.join(dir, 'out');
  const logFile = path.join(dir, `${spec.step}.log`);
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
  const beat = setInterval(() => outer.heartbeat(last), HEARTBEAT_MS);
  beat.unref();
  try {
    hooks.heartbeat({ phase: 'checkout' });
    const headSha = await checkout(spec.cloneUrl, spec.sha, src, signal, deps.gitAuth);
    fs.mkdirSync(out);
    const ws: StepWorkspace = {
      dir,
      src,
      out,
      headSha,
      logKey: key,
      hooks,
      note: (line) => fs.appendFileSync(logFile, `conveyor: ${line}\n`),
      run: async (command, env, timeoutSeconds) => {
        fs.appendFileSync(logFile, `$ ${command}\n`);
        const outcome = await runProcess('sh', ['-c', command], {
          cwd: src,
          env: stepEnv({ ...env, CONVEYOR_OUT: out, CONVEYOR_WORKSPACE: src }),
          logFile,
          signal,
          heartbeatMs: HEARTBEAT_MS,
          onTick: (elapsedMs, bytes) => hooks.heartbeat({ phase: 'run', elapsedMs, bytes }),
          timeoutMs: timeoutSeconds ? timeoutSeconds * 1000 : undefined,
        });
        if (outcome.cancelled) throw new CancelledFailure(`step ${spec.step} cancelled`);
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
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function commandFailed(step: string, key: string, outcome: RunOutcome, timeoutSeconds?: number): ApplicationFailure {
  const details: CommandFailureDetails = {
    step,
    exitCode: outcome.exitCode,
    signal: outcome.signal,
    logKey: key,
    tail: outcome.tail,
  };
  const why = outcome.timedOut
    ? `timed out after ${timeoutSeconds} s`
    : outcome.exitCode === null
      ? `was killed by ${outcome.signal}`
      : `exited with code ${outcome.exitCode}`;
  return ApplicationFailure.create({
    type: FailureType.CommandFailed,
    message: `step ${step} ${why}\n${lastLines(outcome.tail, 20)}`,
    nonRetryable: true,
    details: [details],
  });
}

export function createRunStep(deps: RunStepDeps) {
  return async function runStep(input: RunStepInput): Promise<StepResult> {
    return withStepWorkspace(deps, input, async (ws) => {
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
