// Checks of an rpm signed once at package time (sign-packages.ts), by rpm itself:
// - its header signature verifies against our public key alone (`rpm -K` with a throwaway rpm
//   database holding only that key). `rpm -K` on an unsigned rpm still exits 0 ("digests OK"),
//   so the verdict is read from `-Kv`'s signature line, never from the exit code alone;
// - it is the builder's rpm with a signature added: rpmsign changes only the signature header, so
//   the main header's SHA-256, the header+payload MD5 and the payload digest stay those of the
//   unsigned file (and `rpm -K` checks each against the bytes).
// Both run on the orchestrator: the bytes came from a build worker, which is not trusted.
// The rpm database holding the key is made once per public key and process (under os.tmpdir(),
// removed when the process exits) and shared by every check after: `rpm --import` per rpm was
// one of the two processes each check forked (issue 14 §2). It holds only a public key.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { forgetAtExit, removeAtExit } from '../exec/exit-cleanup';
import { abortable, runProcess } from '../exec/process';

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
const databases = new Map<string, Promise<{ db: string; env: NodeJS.ProcessEnv }>>();

/** An rpm database holding only `publicKey` (module comment); rejects with rpm's words when rpm
 * cannot import it (and the next call tries again). Made under no caller's signal: other checks
 * may be waiting for it; each waits under its own. */
function keyDatabase(publicKey: string, signal?: AbortSignal): Promise<{ db: string; env: NodeJS.ProcessEnv }> {
  const id = createHash('sha256').update(publicKey).digest('hex');
  let made = databases.get(id);
  if (!made) {
    const making = (async () => {
      const work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'rpmkey-'));
      removeAtExit(work);
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

/** Why `file` is not an rpm carrying a valid header signature by `key`; undefined when it is. */
export async function rpmSignatureProblem(
  file: string,
  key: VerifyingKey,
  signal?: AbortSignal,
): Promise<string | undefined> {
  let database: { db: string; env: NodeJS.ProcessEnv };
  try {
    database = await keyDatabase(key.publicKey, signal);
  } catch (err) {
    signal?.throwIfAborted();
    return (err as Error).message;
  }
  const checked = await runProcess('rpm', ['--dbpath', database.db, '-Kv', file], {
    env: database.env,
    signal,
    timeoutMs: RPM_TIMEOUT_MS,
  });
  const keyId = key.fingerprint.slice(-8).toLowerCase();
  const lines = checked.output.split('\n').map((l) => l.trim());
  const good = lines.some((l) => new RegExp(`^Header V4 RSA/SHA\\d+ Signature, key ID ${keyId}: OK$`).test(l));
  const bad = lines.filter((l) => /: (BAD|NOKEY|NOTTRUSTED|NOTFOUND)/.test(l) || /not OK/i.test(l));
  if (checked.exitCode === 0 && good && bad.length === 0) return undefined;
  const said = lines
    .filter((l) => l !== '' && !l.startsWith(file) && !l.startsWith('warning: Could not set GPG_TTY'))
    .join('; ')
    .slice(0, 400);
  return good || bad.length > 0
    ? `rpm -K does not accept it: ${said}`
    : `it carries no header signature by key ${key.fingerprint} (rpm -K: ${said || 'no signature'})`;
}
