// runExamples: the documented examples of a run (collected by the builder's collectExamples) on
// one staging host, through the host's executor like every host command. A document's commands
// are repository code: they reach a shell only on the host, never here.
//
// One block is one script, run by the host's sh: stdout and stderr merged (what the document
// shows is what a terminal shows), stdin empty, a fresh temporary directory as the working
// directory (removed afterwards), the commands in order with a marker line after each that
// carries its exit code. The marker holds a random nonce of this attempt, so a document cannot
// print a marker in advance. The output is then cut at the markers into one output per command,
// and common/doc-examples.ts compares each with the document.
//
// All blocks of a host share one time budget (timeoutSeconds), shorter than the activity's own
// start-to-close; a block that runs out of it stops there and the rest are reported as not run.
// A transcript of every block (commands, output, exit codes) is uploaded to `logKey`.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  ExampleLimits,
  checkExample,
  type CommandRun,
  type DocExample,
  type ExampleMismatch,
} from '../../common/doc-examples';
import type { ExecOutcome, ExecRequest } from './executor';
import type { Host } from './types';

export interface RunExamplesInput {
  host: Host;
  examples: DocExample[];
  /** CONVEYOR_* values of the run (CONVEYOR_HOST set). */
  env: Record<string, string>;
  logKey: string;
  /** For all the blocks together. */
  timeoutSeconds: number;
}

export interface RunExamplesResult {
  host: string;
  examples: number;
  passed: number;
  mismatches: ExampleMismatch[];
  logKey: string;
}

/** Output kept per block: what a document can sensibly show, well below a history's size. */
const CAPTURE_BYTES = 256 * 1024;

/** The script of one block; `mark` is hex only, so it is safe in the text. */
export function exampleScript(example: DocExample, mark: string): string {
  const lines = [
    'exec 2>&1 </dev/null',
    'conveyor_example_dir=$(mktemp -d) && cd "$conveyor_example_dir" || exit 125',
    `trap 'cd / && rm -rf "$conveyor_example_dir"' EXIT`,
  ];
  for (const c of example.commands) {
    lines.push(c.command, `printf '\\n%s %d\\n' '${mark}' "$?"`);
  }
  return `${lines.join('\n')}\n`;
}

/** One run per command of the block, cut out of `output` at the markers. Commands after the last
 * marker never finished: the first of them gets what was printed after it, and why. */
export function splitRuns(output: string, mark: string, commands: number, ended: string): CommandRun[] {
  const runs: CommandRun[] = [];
  const re = new RegExp(`^${mark} (\\d+)$`, 'gm');
  let from = 0;
  let m: RegExpExecArray | null;
  while (runs.length < commands && (m = re.exec(output)) !== null) {
    // The marker's own leading newline ends the command's output.
    const text = output.slice(from, Math.max(from, m.index - 1));
    runs.push({ output: text === '' ? [] : text.split('\n'), exitCode: Number(m[1]) });
    from = m.index + m[0].length + 1;
  }
  if (runs.length < commands) {
    const rest = output.slice(from);
    const shown = rest === '' ? '' : ` after printing:\n${rest.replace(/\n$/, '')}`;
    runs.push({ output: null, exitCode: null, note: `${ended}${shown}` });
  }
  return runs;
}

export interface RunExamplesDeps {
  /** Runs one script on the host (the fleet's exec: heartbeats, cancellation). */
  exec: (req: Omit<ExecRequest, 'signal' | 'onTick'>) => Promise<ExecOutcome>;
  /** A private scratch directory for this attempt. */
  dir: string;
  now?: () => number;
}

/** Runs every block on the host; writes the transcript to `<dir>/examples.log`. */
export async function runExamplesOnHost(deps: RunExamplesDeps, input: RunExamplesInput): Promise<RunExamplesResult> {
  const now = deps.now ?? Date.now;
  const deadline = now() + input.timeoutSeconds * 1000;
  const transcript = path.join(deps.dir, 'examples.log');
  fs.writeFileSync(transcript, '');
  const note = (text: string) => fs.appendFileSync(transcript, `${text}\n`);
  const mismatches: ExampleMismatch[] = [];
  let passed = 0;
  for (const example of input.examples) {
    note(`== ${example.file}:${example.line} on ${input.host.name}`);
    const left = deadline - now();
    let runs: CommandRun[];
    if (left <= 0) {
      runs = [{ output: null, exitCode: null, note: `not run: the examples' ${input.timeoutSeconds} s ran out` }];
    } else {
      const mark = `conveyor-example-${crypto.randomBytes(12).toString('hex')}`;
      const outcome = await deps.exec({
        host: input.host,
        script: exampleScript(example, mark),
        env: input.env,
        logFile: path.join(deps.dir, 'block.log'),
        captureBytes: CAPTURE_BYTES,
        timeoutMs: left,
        purpose: `example ${example.file}:${example.line}`,
      });
      const output = outcome.captured
        ? Buffer.concat([outcome.captured.stdout, outcome.captured.stderr]).toString('utf8')
        : outcome.tail;
      const ended = outcome.timedOut
        ? `timed out: the examples' ${input.timeoutSeconds} s ran out`
        : `its shell ended with ${outcome.exitCode ?? outcome.signal} before the command finished`;
      runs = splitRuns(output, mark, example.commands.length, ended);
      if (outcome.captured?.stdoutTruncated) note(`(output cut at ${CAPTURE_BYTES} bytes)`);
    }
    example.commands.forEach((c, k) => {
      note(`$ ${c.command.split('\n').join('\n> ')}`);
      const r = runs[k];
      if (!r) return;
      if (r.output === null) note(`! ${r.note}`);
      else {
        const shown = [...r.output];
        while (shown.length > 0 && shown[shown.length - 1] === '') shown.pop();
        for (const l of shown) note(l);
        if (r.exitCode !== 0) note(`[${r.exitCode}]`);
      }
    });
    const found = checkExample(example, runs, input.host.name);
    note(found.length === 0 ? '-- ok' : `-- ${found.length} mismatch(es)`);
    if (found.length === 0) passed++;
    mismatches.push(...found);
  }
  // Results travel in the history: beyond a few dozen, a mismatch keeps its place, not its diff.
  for (const m of mismatches.slice(ExampleLimits.mismatchDiffs)) m.diff = '(diff not kept: see the log)';
  return { host: input.host.name, examples: input.examples.length, passed, mismatches, logKey: input.logKey };
}
