// runStep: check out the commit into a fresh workspace and run one configured step in it with
// `sh -c`. The command is trusted config; webhook values reach it only as CONVEYOR_* env vars.
// Idempotent: every attempt gets a new workspace and overwrites the same log key.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { S3Client } from '@aws-sdk/client-s3';
import { FailureType, type CommandFailureDetails } from '../../common/failures';
import type { RunStepInput, StepResult } from '../../common/types';
import { checkout } from '../git/checkout';
import { putText } from '../storage/s3';
import { runProcess, stepEnv } from './process';

export interface RunStepDeps {
  s3: S3Client;
  artifactsBucket: string;
  artifactsPrefix: string;
  workspaceRoot?: string;
}

export function logKey(prefix: string, stageWorkflowId: string, step: string): string {
  return `${prefix}logs/${stageWorkflowId}/${step}.log`;
}

export function createRunStep(deps: RunStepDeps) {
  return async function runStep(input: RunStepInput): Promise<StepResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const root = deps.workspaceRoot ?? path.join(os.tmpdir(), 'conveyor-work');
    fs.mkdirSync(root, { recursive: true });
    const dir = fs.mkdtempSync(path.join(root, `${input.step}-`));
    const src = path.join(dir, 'src');
    const out = path.join(dir, 'out');
    const logFile = path.join(dir, 'step.log');
    const key = logKey(deps.artifactsPrefix, input.stageWorkflowId, input.step);
    try {
      ctx.heartbeat({ phase: 'checkout' });
      const headSha = await checkout(input.cloneUrl, input.sha, src, signal);
      fs.mkdirSync(out);
      fs.writeFileSync(logFile, `$ ${input.command}\n`);
      ctx.log.info('running step', { step: input.step, sha: input.sha });
      const outcome = await runProcess('sh', ['-c', input.command], {
        cwd: src,
        env: stepEnv({ ...input.env, CONVEYOR_OUT: out, CONVEYOR_WORKSPACE: src }),
        logFile,
        signal,
        heartbeatMs: 5000,
        onTick: (elapsedMs, bytes) => ctx.heartbeat({ phase: 'run', elapsedMs, bytes }),
        timeoutMs: input.timeoutSeconds ? input.timeoutSeconds * 1000 : undefined,
      });
      await putText(deps.s3, deps.artifactsBucket, key, fs.readFileSync(logFile), undefined, signal);
      if (outcome.cancelled) throw ApplicationFailure.retryable(`step ${input.step} cancelled`, 'Cancelled');
      if (outcome.exitCode !== 0) {
        const details: CommandFailureDetails = {
          step: input.step,
          exitCode: outcome.exitCode,
          signal: outcome.signal,
          logKey: key,
          tail: outcome.tail,
        };
        const why = outcome.timedOut
          ? `timed out after ${input.timeoutSeconds} s`
          : outcome.exitCode === null
            ? `was killed by ${outcome.signal}`
            : `exited with code ${outcome.exitCode}`;
        throw ApplicationFailure.create({
          type: FailureType.CommandFailed,
          message: `step ${input.step} ${why}\n${lastLines(outcome.tail, 20)}`,
          nonRetryable: true,
          details: [details],
        });
      }
      return {
        step: input.step,
        exitCode: 0,
        headSha,
        logKey: key,
        tail: lastLines(outcome.tail, 20),
        durationMs: outcome.durationMs,
      };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}

export function lastLines(text: string, n: number): string {
  const lines = text.replace(/\n$/, '').split('\n');
  return lines.slice(-n).join('\n');
}
