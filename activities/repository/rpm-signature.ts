// Checks of an rpm signed once at package time (sign-packages.ts), by rpm itself:
// - its header signature verifies against our public key alone (`rpm -K` with a throwaway rpm
//   database holding only that key). `rpm -K` on an unsigned rpm still exits 0 ("digests OK"),
//   so the verdict is read from `-Kv`'s signature line, never from the exit code alone;
// - it is the builder's rpm with a signature added: rpmsign changes only the signature header, so
//   the main header's SHA-256, the header+payload MD5 and the payload digest stay those of the
//   unsigned file (and `rpm -K` checks each against the bytes).
// Both run on the orchestrator: the bytes came from a build worker, which is not trusted.
// The rpm database holding the key is made once per public key and process (under os.tmpdir(),
// removed when the process exits; one a killed process left is swept by the next that makes one)
// and shared by every check after: `rpm --import` per rpm was
// one of the two processes each check forked (issue 14 §2). It holds only a public key.
// A publish of many rpms checks them in batches (rpmSignatureProblems): one `rpm -Kv` reads a
// few hundred files and prints one section per file, headed by the file's path. Only a section
// that is plainly good counts; any other file is checked again alone, so a refusal carries the
// single check's words and a batch never passes a file the single check would refuse.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { forgetAtExit, markOwner, removeAtExit, sweepOwnedDirs } from '../exec/exit-cleanup';
import { abortable, runProcess } from '../exec/process';
import { mapLimit } from './s3-objects';

export interface VerifyingKey {
  fingerprint: string;
  /** Armored public key. */
  publicKey: string;
}

/** The digests rpmsign leaves unchanged (module comment), as one comparable string. */
export async function rpmContentDigests(file: string, signal?: AbortSignal): Promise<string | undefined> {
  const out = await runProcess(
    'rpm',
    ['-qp', '--nosignature', '--nodigest', '--qf', 'CONVEYOR %{SHA256HEADER} %{SIGMD5} %{PAYLOADDIGEST}\\n', file],
    { signal },
  );
  const line = out.output.split('\n').find((l) => l.startsWith('CONVEYOR '));
  return out.exitCode === 0 && line ? line.slice('CONVEYOR '.length).trim() : undefined;
}

const RPM_TIMEOUT_MS = 60_000;
const DATABASE_PREFIX = 'rpmkey-';
const databases = new Map<string, Promise<{ db: string; env: NodeJS.ProcessEnv }>>();
let swept: Promise<unknown> | undefined;

/** Removes the key databases under `dir` that a process killed outright left behind
 * (exit-cleanup.ts's sweepOwnedDirs); the first database a process makes sweeps once. One
 * without an owner file is an older version's, maybe still in use: kept (it holds only a
 * public key). */
export function sweepStaleKeyDatabases(dir = os.tmpdir()): Promise<string[]> {
  return sweepOwnedDirs(dir, DATABASE_PREFIX);
}

/** An rpm database holding only `publicKey` (module comment); rejects with rpm's words when rpm
 * cannot import it (and the next call tries again). Made under no caller's signal: other checks
 * may be waiting for it; each waits under its own. */
function keyDatabase(publicKey: string, signal?: AbortSignal): Promise<{ db: string; env: NodeJS.ProcessEnv }> {
  const id = createHash('sha256').update(publicKey).digest('hex');
  let made = databases.get(id);
  if (!made) {
    const making = (async () => {
      swept ??= sweepStaleKeyDatabases().catch(() => undefined);
      await swept;
      const work = await fs.promises.mkdtemp(path.join(os.tmpdir(), DATABASE_PREFIX));
      removeAtExit(work);
      await markOwner(work);
      const keyFile = path.join(work, 'key.asc');
      await fs.promises.writeFile(keyFile, publicKey);
      const env = { PATH: process.env.PATH, LANG: 'C', LC_ALL: 'C', HOME: work };
      const db = path.join(work, 'db');
      const imported = await runProcess('rpm', ['--dbpath', db, '--import', keyFile], {
        env,
        timeoutMs: RPM_TIMEOUT_MS,
      });
      if (imported.exitCode !== 0) {
        await fs.promises.rm(work, { recursive: true, force: true });
        forgetAtExit(work);
        throw new Error(`rpm cannot import the signing key: ${imported.tail.slice(-300)}`);
      }
      return { db, env };
    })();
    databases.set(id, making);
    making.catch(() => {
      if (databases.get(id) === making) databases.delete(id);
    });
    made = making;
  }
  return abortable(made, signal);
}

/** The key's database, or why there is none (as a verdict: rpm's words). */
async function databaseFor(
  key: VerifyingKey,
  signal?: AbortSignal,
): Promise<{ db: string; env: NodeJS.ProcessEnv } | { problem: string }> {
  try {
    return await keyDatabase(key.publicKey, signal);
  } catch (err) {
    signal?.throwIfAborted();
    return { problem: (err as Error).message };
  }
}

/** What `rpm -Kv` said of one file: a good signature by the key, and any line that is not OK. */
function verdictLines(lines: string[], key: VerifyingKey): { good: boolean; bad: string[] } {
  const keyId = key.fingerprint.slice(-8).toLowerCase();
  const goodLine = new RegExp(`^Header V4 RSA/SHA\\d+ Signature, key ID ${keyId}: OK$`);
  return {
    good: lines.some((l) => goodLine.test(l)),
    bad: lines.filter((l) => /: (BAD|NOKEY|NOTTRUSTED|NOTFOUND)/.test(l) || /not OK/i.test(l)),
  };
}

/** Files per `rpm -Kv` of a batch: well under the argument limit, and each call well inside its
 * timeout (rpm checks a small package in about a millisecond). */
const BATCH = 250;

/** `rpm -Kv` over `files` (given once each) and its answer split by file: a section is headed by
 * `<file>:` alone on a line, its verdicts are the indented lines after it. A path that spans
 * lines, or a file headed twice, gets no section: nothing rpm printed is attributed to it. */
async function rpmCheck(
  files: readonly string[],
  database: { db: string; env: NodeJS.ProcessEnv },
  signal?: AbortSignal,
): Promise<{ exitCode: number | null; output: string; sections: Map<string, string[]> }> {
  const checked = await runProcess('rpm', ['--dbpath', database.db, '-Kv', '--', ...files], {
    env: database.env,
    signal,
    timeoutMs: RPM_TIMEOUT_MS,
  });
  const wanted = new Set(files.filter((f) => !f.includes('\n')));
  const sections = new Map<string, string[]>();
  const twice = new Set<string>();
  let current: string[] | undefined;
  for (const raw of checked.output.split('\n')) {
    const head = raw.endsWith(':') && wanted.has(raw.slice(0, -1)) ? raw.slice(0, -1) : undefined;
    if (head !== undefined) {
      if (sections.has(head)) twice.add(head);
      current = [];
      sections.set(head, current);
    } else if (current && /^\s/.test(raw)) current.push(raw.trim());
    else current = undefined;
  }
  for (const f of twice) sections.delete(f);
  return { exitCode: checked.exitCode, output: checked.output, sections };
}

/** rpmSignatureProblem of each file, in order (module comment: batches, then single checks). */
export async function rpmSignatureProblems(
  files: readonly string[],
  key: VerifyingKey,
  signal?: AbortSignal,
): Promise<(string | undefined)[]> {
  if (files.length === 0) return [];
  const database = await databaseFor(key, signal);
  if ('problem' in database) return files.map(() => database.problem);
  const unique = [...new Set(files)];
  const passed = new Set<string>();
  // A single file goes straight to the single check below.
  const batches: string[][] = [];
  if (unique.length > 1) for (let at = 0; at < unique.length; at += BATCH) batches.push(unique.slice(at, at + BATCH));
  // Two at a time: each rpm runs on one core.
  await mapLimit(batches, 2, async (batch) => {
    const { exitCode, sections } = await rpmCheck(batch, database, signal);
    const good = batch.filter((f) => {
      const v = verdictLines(sections.get(f) ?? [], key);
      return v.good && v.bad.length === 0;
    });
    // rpm's exit status covers the whole batch: failed with every section good, trust none.
    if (exitCode === 0 || good.length < batch.length) for (const f of good) passed.add(f);
  });
  const alone = unique.filter((f) => !passed.has(f));
  const verdicts = await mapLimit(alone, 4, (f) => rpmSignatureProblem(f, key, signal));
  const problems = new Map(alone.map((f, i) => [f, verdicts[i]]));
  return files.map((f) => problems.get(f));
}

/** Why `file` is not an rpm carrying a valid header signature by `key`; undefined when it is. */
export async function rpmSignatureProblem(
  file: string,
  key: VerifyingKey,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const database = await databaseFor(key, signal);
  if ('problem' in database) return database.problem;
  const { exitCode, output, sections } = await rpmCheck([file], database, signal);
  const lines = output.split('\n').map((l) => l.trim());
  // The good signature must be said of this file (its own section); a refusal anywhere counts.
  const { good } = verdictLines(sections.get(file) ?? [], key);
  const { bad } = verdictLines(lines, key);
  if (exitCode === 0 && good && bad.length === 0) return undefined;
  const said = lines
    .filter((l) => l !== '' && !l.startsWith(file) && !l.startsWith('warning: Could not set GPG_TTY'))
    .join('; ')
    .slice(0, 400);
  return good || bad.length > 0
    ? `rpm -K does not accept it: ${said}`
    : `it carries no header signature by key ${key.fingerprint} (rpm -K: ${said || 'no signature'})`;
}
