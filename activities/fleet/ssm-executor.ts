// The `ssm` executor: AWS Systems Manager Run Command (document AWS-RunShellScript) to one instance
// at a time, polled to completion with heartbeats.
//
// Hazards:
// - GetCommandInvocation answers InvocationDoesNotExist for a moment after SendCommand succeeded
//   (the invocation is created asynchronously): that is tolerated for a grace period, not an error.
// - SSM keeps only the first 24,000 characters of stdout (8,000 of stderr) in the invocation; the
//   whole output goes to the artifacts bucket (OutputS3BucketName/KeyPrefix) and is read from there
//   when the agent wrote it.
// - The environment of a command cannot be set: values travel as `export NAME='…'` lines in front
//   of the script, quoted (validate.ts), after their names were checked.
// - Cancellation sends CancelCommand and waits a little for the agent to confirm; the agent kills
//   the script's process tree.
// - Against moto, SendCommand answers Success with empty output without running anything
//   (shared/FACTS.md): nothing here may take an exit code 0 with no output as proof that a script
//   ran. The version reads of index.ts require a marker line in the output for that reason.
import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import {
  CancelCommandCommand,
  GetCommandInvocationCommand,
  SendCommandCommand,
  type GetCommandInvocationCommandOutput,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { Capture, Tail, type ExecOutcome, type ExecRequest, type Executor } from './executor';
import { FleetFailure, fleetFailure } from './failures';
import { remoteScript } from './scripts';
import { exportLines } from './validate';

export interface SsmExecutorDeps {
  ssm: SSMClient;
  s3: S3Client;
  /** The artifacts bucket: SSM writes complete outputs under `<prefix>ssm-output/`. */
  bucket: string;
  prefix: string;
  /** How often GetCommandInvocation is polled. */
  pollMs?: number;
  /** How long InvocationDoesNotExist is taken for "not created yet". */
  notFoundGraceMs?: number;
}

export const SSM_DOCUMENT = 'AWS-RunShellScript';
const TERMINAL = new Set(['Success', 'Failed', 'Cancelled', 'TimedOut']);
const UNDELIVERED = new Set(['Undeliverable', 'DeliveryTimedOut', 'InvalidPlatform', 'Terminated']);
/** AWS-RunShellScript's own default; our scripts' client-side deadline is this plus a margin. */
const DEFAULT_EXECUTION_TIMEOUT_S = 3600;
const INSTANCE_ID = /^m?i-[0-9a-f]{8,17}$/;

export function ssmOutputPrefix(prefix: string): string {
  return `${prefix}ssm-output`;
}

export function ssmExecutor(deps: SsmExecutorDeps): Executor {
  const pollMs = deps.pollMs ?? 2000;
  const graceMs = deps.notFoundGraceMs ?? 30_000;
  return {
    async run(req: ExecRequest): Promise<ExecOutcome> {
      const instanceId = req.host.instanceId;
      if (!INSTANCE_ID.test(instanceId)) {
        throw fleetFailure(
          FleetFailure.BadConfig,
          `host ${req.host.name}: ${JSON.stringify(instanceId)} is not an instance ID`,
        );
      }
      const started = Date.now();
      const executionTimeout = Math.max(1, Math.ceil((req.timeoutMs ?? DEFAULT_EXECUTION_TIMEOUT_S * 1000) / 1000));
      const outputPrefix = ssmOutputPrefix(deps.prefix);
      const script = remoteScript(req);
      req.signal?.throwIfAborted();
      let commandId: string;
      try {
        const sent = await deps.ssm.send(
          new SendCommandCommand({
            DocumentName: SSM_DOCUMENT,
            InstanceIds: [instanceId],
            Parameters: {
              commands: [`${exportLines(req.env)}${script}`],
              executionTimeout: [String(executionTimeout)],
            },
            MaxConcurrency: '1',
            MaxErrors: '0',
            OutputS3BucketName: deps.bucket,
            OutputS3KeyPrefix: outputPrefix,
            Comment: `conveyor: ${req.purpose}`.slice(0, 100),
          }),
          { abortSignal: req.signal },
        );
        if (!sent.Command?.CommandId) throw new Error('SendCommand returned no CommandId');
        commandId = sent.Command.CommandId;
      } catch (err) {
        if (req.signal?.aborted) throw err;
        const name = (err as Error).name;
        const retryable = !['ValidationException', 'InvalidDocument', 'InvalidParameters'].includes(name);
        throw fleetFailure(
          retryable ? FleetFailure.HostUnreachable : FleetFailure.BadConfig,
          `SSM SendCommand to ${req.host.name} (${instanceId}) failed: ${name}: ${(err as Error).message}`,
          { retryable },
        );
      }

      let cancelRequestedAt: number | undefined;
      let timedOut = false;
      // Our own deadline in case the agent never reports (instance stopped mid-command).
      const deadline = started + executionTimeout * 1000 + 120_000;
      let inv: GetCommandInvocationCommandOutput | undefined;
      for (;;) {
        await pause(pollMs, cancelRequestedAt === undefined ? req.signal : undefined);
        if (req.signal?.aborted && cancelRequestedAt === undefined) {
          cancelRequestedAt = Date.now();
          await deps.ssm
            .send(new CancelCommandCommand({ CommandId: commandId, InstanceIds: [instanceId] }))
            .catch(() => undefined); // the wait below still bounds how long we stay
        }
        try {
          inv = await deps.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }));
        } catch (err) {
          const name = (err as Error).name;
          if (name === 'InvocationDoesNotExist' && Date.now() - started < graceMs) continue;
          if (cancelRequestedAt !== undefined) break;
          throw fleetFailure(
            FleetFailure.HostUnreachable,
            `SSM command ${commandId} on ${req.host.name}: ${name}: ${(err as Error).message}`,
            { retryable: true },
          );
        }
        req.onTick?.(Date.now() - started);
        if (inv.Status && TERMINAL.has(inv.Status)) break;
        if (cancelRequestedAt !== undefined && Date.now() - cancelRequestedAt > 30_000) break;
        if (Date.now() > deadline && cancelRequestedAt === undefined) {
          timedOut = true;
          cancelRequestedAt = Date.now();
          await deps.ssm
            .send(new CancelCommandCommand({ CommandId: commandId, InstanceIds: [instanceId] }))
            .catch(() => undefined);
        }
      }

      const cancelled = Boolean(req.signal?.aborted);
      const details = inv?.StatusDetails ?? '';
      if (!cancelled && UNDELIVERED.has(details)) {
        throw fleetFailure(
          FleetFailure.HostUnreachable,
          `SSM could not run the command on ${req.host.name} (${instanceId}): ${details}`,
          { retryable: true },
        );
      }
      const streams = await readOutput(deps, outputPrefix, commandId, instanceId, inv);
      const output = joinOutput(streams);
      let captured: ExecOutcome['captured'];
      if (req.captureBytes) {
        const capture = new Capture(req.captureBytes);
        capture.push('stdout', Buffer.from(streams.stdout));
        capture.push('stderr', Buffer.from(streams.stderr + streams.note));
        captured = capture.result();
      }
      fs.mkdirSync(path.dirname(req.logFile), { recursive: true });
      fs.appendFileSync(req.logFile, output);
      const tail = new Tail();
      tail.push(Buffer.from(output));
      const exitCode =
        inv?.Status === 'Success' || inv?.Status === 'Failed'
          ? typeof inv.ResponseCode === 'number' && inv.ResponseCode >= 0
            ? inv.ResponseCode
            : null
          : null;
      return {
        exitCode,
        signal: exitCode === null ? (inv?.Status ?? 'unknown') : null,
        tail: tail.text(),
        durationMs: Date.now() - started,
        cancelled,
        timedOut: timedOut || details === 'ExecutionTimedOut',
        captured,
      };
    },
  };
}

interface SsmOutput {
  stdout: string;
  stderr: string;
  /** Conveyor's note when SSM cut the output and no complete copy exists. */
  note: string;
}

function joinOutput(o: SsmOutput): string {
  const joined = [o.stdout, o.stderr].filter((s) => s.length > 0).map((s) => (s.endsWith('\n') ? s : `${s}\n`));
  return `${joined.join('')}${o.note}`;
}

/** The complete stdout and stderr from the artifacts bucket when the agent wrote them there,
 * else what the invocation holds (noting when that was cut). */
async function readOutput(
  deps: SsmExecutorDeps,
  outputPrefix: string,
  commandId: string,
  instanceId: string,
  inv: GetCommandInvocationCommandOutput | undefined,
): Promise<SsmOutput> {
  const under = `${outputPrefix}/${commandId}/${instanceId}/`;
  const listed = await deps.s3
    .send(new ListObjectsV2Command({ Bucket: deps.bucket, Prefix: under }))
    .then((r) => r.Contents ?? [])
    .catch(() => []);
  const read = async (name: string) => {
    const obj = listed.find((o) => o.Key?.endsWith(`/${name}`));
    if (!obj?.Key) return undefined;
    const got = await deps.s3.send(new GetObjectCommand({ Bucket: deps.bucket, Key: obj.Key }));
    return got.Body ? await got.Body.transformToString('utf8') : '';
  };
  let stdout = await read('stdout');
  let stderr = await read('stderr');
  let note = '';
  if (stdout === undefined && stderr === undefined) {
    stdout = inv?.StandardOutputContent ?? '';
    stderr = inv?.StandardErrorContent ?? '';
    if (stdout.length >= 24_000 || stderr.length >= 8_000) {
      note = `conveyor: SSM cut this output; no complete copy under s3://${deps.bucket}/${under}\n`;
    }
  }
  return { stdout: stdout ?? '', stderr: stderr ?? '', note };
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
