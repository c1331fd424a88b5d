// OpenPGP signing with keyrings of our own. The armored private key is written only into a
// GNUPGHOME made for it (mode 0700), never into the user's keyring, never into an argv or a log
// line. `--batch --pinentry-mode loopback` keeps gpg from ever asking a terminal. Homes live under
// os.tmpdir(), not the work dir: gpg-agent's socket path must fit in 108 bytes. RSA 4096 because it
// is the one key type every apt, rpm and dnf verifies.
//
// A signing keyring is kept per set of keys for as long as it is used (a pool), not made and
// removed around every publish: the import, listings, export, agent start and `gpgconf --kill` of
// a throwaway keyring were ~8 processes per publish, forked from a large worker (issue 14 §2: 39%
// of the orchestrator's main thread under load was spawning). openSigner hands out a lease: its
// calls run under the lease's own cancellation signal, close() returns it, and a keyring nobody
// holds is closed after IDLE_MS (its agent stopped, its home removed). A keyring whose signing
// fails is dropped from the pool, so a retry starts from a new one. Every home carries its owner
// (pid, start time and PID namespace: exec/exit-cleanup.ts): homes still open when the process
// exits normally are removed then, and the first openSigner of a process removes the homes of
// owners that are gone (a killed worker left its private key on disk before); an owner in another
// PID namespace is never judged. gpg's calls each have a time limit of their own.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { forgetAtExit, markOwner, removeAtExit, sweepOwnedDirs } from '../exec/exit-cleanup';
import { abortable, runChecked, runProcess } from '../exec/process';
import { RepositoryFailure, nonRetryable } from './failures';

export interface Signer {
  /** The primary key's: the one that signs rpms (an rpm header holds one signature). */
  fingerprint: string;
  /** Every key that signs indexes, primary first: two while a rotation overlaps (signing.nextKey*). */
  fingerprints: string[];
  /** The primary key's armored public key (what an rpm signature is checked against). */
  publicKey: string;
  /** Every key's public key in one armored block, as clients import it (signed-by=, gpgkey=). */
  publicKeys: string;
  /** An InRelease-style clearsigned copy of `text`, one signature per key. */
  clearsign(text: string | Buffer): Promise<string>;
  /** An armored detached signature (Release.gpg, repomd.xml.asc), one signature per key. */
  detachSign(data: string | Buffer): Promise<string>;
  /** Adds the primary key's RPM header signature to each file in place (rpmsign --addsign). */
  signRpms(files: string[]): Promise<void>;
  close(): Promise<void>;
}

const NO_PROMPT = ['--batch', '--pinentry-mode', 'loopback', '--passphrase', ''];

function which(name: string): string {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(path.delimiter)) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  throw new Error(`${name} is not installed (apt-get install gnupg)`);
}

interface Keyring {
  home: string;
  env: NodeJS.ProcessEnv;
  gpg: string;
  scratch(name: string): string;
  close(): Promise<void>;
}

/** A gpg or gpgconf call: never longer than this (an agent that hangs must not hold a publish). */
const GPG_TIMEOUT_MS = 60_000;
const HOME_PREFIX = 'cgpg-';
function stopAgentSync(home: string): void {
  spawnSync('gpgconf', ['--homedir', home, '--kill', 'all'], { stdio: 'ignore', timeout: 10_000 });
}

async function openKeyring(): Promise<Keyring> {
  const home = await fs.promises.mkdtemp(path.join(os.tmpdir(), HOME_PREFIX));
  await fs.promises.chmod(home, 0o700);
  await markOwner(home);
  removeAtExit(home, stopAgentSync);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LANG: 'C', LC_ALL: 'C', HOME: home, GNUPGHOME: home };
  let n = 0;
  return {
    home,
    env,
    gpg: which('gpg'),
    scratch: (name) => path.join(home, `${++n}-${name}`),
    async close() {
      // The agent holds the unlocked key in memory: stop it before its directory goes.
      await runProcess('gpgconf', ['--homedir', home, '--kill', 'all'], { env, timeoutMs: GPG_TIMEOUT_MS }).catch(
        () => undefined,
      );
      await fs.promises.rm(home, { recursive: true, force: true });
      forgetAtExit(home);
    },
  };
}

/** Removes the keyring homes under `dir` whose owner process is gone (killed before it could
 * remove them), stopping their agents first (sweepOwnedDirs says how owners are judged); a home
 * without an owner file (an older version's) once it is older than ten minutes: it holds a
 * private key. The homes removed. */
export function sweepStaleKeyrings(dir = os.tmpdir(), now = Date.now()): Promise<string[]> {
  return sweepOwnedDirs(dir, HOME_PREFIX, {
    now,
    ownerlessAfterMs: 10 * 60_000,
    before: async (home) => {
      await runProcess('gpgconf', ['--homedir', home, '--kill', 'all'], { timeoutMs: 10_000 }).catch(() => undefined);
    },
  });
}

/** Fingerprints of the secret primary keys in the keyring. */
async function secretFingerprints(k: Keyring): Promise<string[]> {
  const out = await runChecked(k.gpg, ['--homedir', k.home, '--batch', '--with-colons', '--list-secret-keys'], {
    env: k.env,
    timeoutMs: GPG_TIMEOUT_MS,
  });
  const fprs: string[] = [];
  let primary = false;
  for (const line of out.split('\n')) {
    const f = line.split(':');
    if (f[0] === 'sec') primary = true;
    else if (f[0] === 'ssb') primary = false;
    else if (f[0] === 'fpr' && primary) {
      fprs.push(f[9]);
      primary = false;
    }
  }
  return fprs;
}

/** Imports one private key; its fingerprint, or undefined when the keyring already held it. */
async function importPrivate(k: Keyring, armoredPrivate: string, fresh: boolean): Promise<string | undefined> {
  const before = fresh ? [] : await secretFingerprints(k);
  const keyFile = k.scratch('key.asc');
  await fs.promises.writeFile(keyFile, armoredPrivate, { mode: 0o600 });
  const imported = await runProcess(k.gpg, ['--homedir', k.home, ...NO_PROMPT, '--import', keyFile], {
    env: k.env,
    timeoutMs: GPG_TIMEOUT_MS,
  });
  await fs.promises.rm(keyFile, { force: true });
  const fprs = imported.exitCode === 0 ? await secretFingerprints(k) : [];
  if (fprs.length === 0) {
    // gpg's own output is left out on purpose: it may quote what it was given.
    throw nonRetryable(
      RepositoryFailure.BadConfig,
      'a signing key is not an armored OpenPGP private key (conveyor.yml signing.keyFile / keyEnv / nextKeyFile / nextKeyEnv); ' +
        'create one with `conveyor dev` (first start) or `gpg --armor --export-secret-keys <id>`',
    );
  }
  return fprs.find((f) => !before.includes(f));
}

/** Runs a gpg export into a file of the keyring's home (runChecked's output mixes in stderr). */
async function exportKey(k: Keyring, args: string[], signal?: AbortSignal): Promise<string> {
  const output = k.scratch('export.asc');
  await runChecked(k.gpg, ['--homedir', k.home, ...NO_PROMPT, '--armor', '--output', output, ...args], {
    env: k.env,
    signal,
    timeoutMs: GPG_TIMEOUT_MS,
  });
  const text = await fs.promises.readFile(output, 'utf8');
  await fs.promises.rm(output, { force: true });
  return text;
}

/** A pooled keyring holding a set of keys (module comment). */
interface Held {
  id: string;
  k: Keyring;
  fingerprints: string[];
  publicKey: string;
  publicKeys: string;
  users: number;
  /** Dropped from the pool (a signing failed): closed when its last lease is returned. */
  dropped: boolean;
  idle?: NodeJS.Timeout;
}

/** How long a keyring nobody holds stays open for the next publish. */
const IDLE_MS = 5 * 60_000;
const pool = new Map<string, Promise<Held>>();
let swept: Promise<unknown> | undefined;

/** Imports the keys into a new keyring (no caller's signal: other leases may wait for it). */
async function holdKeys(id: string, keys: string[]): Promise<Held> {
  const k = await openKeyring();
  try {
    const fingerprints: string[] = [];
    for (const [i, key] of keys.entries()) {
      const fpr = await importPrivate(k, key, i === 0);
      if (fpr) fingerprints.push(fpr);
    }
    if (fingerprints.length !== keys.length) {
      throw nonRetryable(
        RepositoryFailure.BadConfig,
        'signing.nextKeyFile / nextKeyEnv holds the same key as signing.keyFile / keyEnv, or no private key: ' +
          'give it the new key (`gpg --armor --export-secret-keys <id>`)',
      );
    }
    const publicKey = await exportKey(k, ['--export', fingerprints[0]]);
    const publicKeys = fingerprints.length === 1 ? publicKey : await exportKey(k, ['--export', ...fingerprints]);
    const held: Held = { id, k, fingerprints, publicKey, publicKeys, users: 0, dropped: false };
    idleLater(held);
    return held;
  } catch (err) {
    await k.close();
    throw err;
  }
}

function idleLater(held: Held): void {
  clearTimeout(held.idle);
  held.idle = setTimeout(() => {
    if (held.users > 0) return;
    drop(held);
    void held.k.close();
  }, IDLE_MS);
  held.idle.unref();
}

function drop(held: Held): void {
  held.dropped = true;
  void pool.get(held.id)?.then((h) => {
    if (h === held) pool.delete(held.id);
  });
}

async function release(held: Held): Promise<void> {
  held.users--;
  if (held.users > 0) return;
  if (held.dropped) {
    clearTimeout(held.idle);
    await held.k.close();
  } else idleLater(held);
}

/** A signer for one key, or for several (a rotation's overlap: the first is the primary, every one
 * signs the indexes, so a client trusting either key accepts them): a lease on the pooled keyring
 * of those keys, its calls cancelled by `signal`. close() returns the lease. */
export async function openSigner(armoredPrivate: string | string[], signal?: AbortSignal): Promise<Signer> {
  swept ??= sweepStaleKeyrings().catch(() => undefined);
  await abortable(swept, signal);
  const keys = [...new Set(typeof armoredPrivate === 'string' ? [armoredPrivate] : armoredPrivate)];
  const id = crypto.createHash('sha256').update(keys.join('\0')).digest('hex');
  let held: Held;
  for (;;) {
    let made = pool.get(id);
    if (!made) {
      const making = holdKeys(id, keys);
      pool.set(id, making);
      making.catch(() => {
        if (pool.get(id) === making) pool.delete(id);
      });
      made = making;
    }
    held = await abortable(made, signal);
    // Dropped (idle, or a failed signing) after the pool handed it out: take a new one.
    if (!held.dropped) break;
    if (pool.get(id) === made) pool.delete(id);
  }
  held.users++;
  clearTimeout(held.idle);
  const { k, fingerprints } = held;
  const fingerprint = fingerprints[0];
  /** A failed gpg or rpmsign: the keyring may be what is broken, so the next lease gets a new one. */
  const guarded = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (!signal?.aborted) drop(held);
      throw err;
    }
  };
  const gpgSign = (data: string | Buffer, mode: '--clearsign' | '--detach-sign') =>
    guarded(async () => {
      const input = k.scratch('in');
      const output = k.scratch('out');
      try {
        await fs.promises.writeFile(input, data);
        await runChecked(
          k.gpg,
          [
            '--homedir',
            k.home,
            ...NO_PROMPT,
            // Several --local-user: one signature each, in one InRelease or one detached file.
            ...fingerprints.flatMap((f) => ['--local-user', f]),
            '--digest-algo',
            'SHA256',
            '--armor',
            '--output',
            output,
            mode,
            input,
          ],
          { env: k.env, signal, timeoutMs: GPG_TIMEOUT_MS },
        );
        return await fs.promises.readFile(output, 'utf8');
      } finally {
        await Promise.all([input, output].map((f) => fs.promises.rm(f, { force: true })));
      }
    });
  let returned = false;
  return {
    fingerprint,
    fingerprints,
    publicKey: held.publicKey,
    publicKeys: held.publicKeys,
    clearsign: (text) => gpgSign(text, '--clearsign'),
    detachSign: (data) => gpgSign(data, '--detach-sign'),
    signRpms: (files) =>
      guarded(async () => {
        if (files.length === 0) return;
        // Debian's rpm looks for /usr/bin/gpg2 and would prompt without these (shared/FACTS.md).
        await runChecked(
          'rpmsign',
          [
            '--addsign',
            '--define',
            `_gpg_name ${fingerprint}`,
            '--define',
            `__gpg ${k.gpg}`,
            '--define',
            `_gpg_path ${k.home}`,
            '--define',
            '_gpg_digest_algo sha256',
            '--define',
            '_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback --passphrase ""',
            ...files,
          ],
          { env: k.env, signal },
        );
      }),
    async close() {
      if (returned) return;
      returned = true;
      await release(held);
    },
  };
}

/** Closes every pooled keyring nobody holds now (tests; the exit hook removes the rest). */
export async function closeIdleSigners(): Promise<void> {
  const all = await Promise.allSettled([...pool.values()]);
  await Promise.all(
    all.map(async (r) => {
      if (r.status !== 'fulfilled' || r.value.users > 0) return;
      clearTimeout(r.value.idle);
      drop(r.value);
      await r.value.k.close();
    }),
  );
}

/** The homes of the pooled keyrings (tests). */
export async function pooledKeyrings(): Promise<string[]> {
  const all = await Promise.allSettled([...pool.values()]);
  return all.flatMap((r) => (r.status === 'fulfilled' ? [r.value.k.home] : []));
}

/** Creates an RSA 4096 signing key without passphrase and writes its armored private key to
 * `file` (mode 0600). Refuses to replace an existing file: losing a repository key strands every
 * client that trusts it. */
export async function generateSigningKey(file: string, uid: string): Promise<void> {
  if (!uid.trim() || /[\n\r]/.test(uid)) throw new Error('the key uid must be one non-empty line');
  if (fs.existsSync(file)) throw new Error(`${file} exists; refusing to replace a signing key`);
  const k = await openKeyring();
  try {
    await runChecked(
      k.gpg,
      ['--homedir', k.home, ...NO_PROMPT, '--quick-generate-key', uid, 'rsa4096', 'sign', 'never'],
      {
        env: k.env,
      },
    );
    const [fingerprint] = await secretFingerprints(k);
    const armored = await exportKey(k, ['--export-secret-keys', fingerprint]);
    await fs.promises.mkdir(path.dirname(path.resolve(file)), { recursive: true });
    // Written beside the target, then linked into place: a crash never leaves half a key, and
    // link (unlike rename) fails if another process created the file meanwhile.
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.promises.writeFile(tmp, armored, { mode: 0o600, flag: 'wx' });
    try {
      await fs.promises.link(tmp, file);
    } finally {
      await fs.promises.rm(tmp, { force: true });
    }
  } finally {
    await k.close();
  }
}

/** The armored public key of an armored private key. */
export async function publicKeyOf(armoredPrivate: string): Promise<string> {
  const signer = await openSigner(armoredPrivate);
  try {
    return signer.publicKey;
  } finally {
    await signer.close();
  }
}

/** The fingerprints of the primary keys in an armored public key block, read by gpg without
 * importing it anywhere (`--show-keys`, a throwaway home). [] when gpg finds no key in it. */
export async function publicKeyFingerprints(armoredPublic: string, signal?: AbortSignal): Promise<string[]> {
  const k = await openKeyring();
  try {
    const file = k.scratch('public.asc');
    await fs.promises.writeFile(file, armoredPublic);
    const shown = await runProcess(k.gpg, ['--homedir', k.home, '--batch', '--with-colons', '--show-keys', file], {
      env: k.env,
      signal,
      timeoutMs: GPG_TIMEOUT_MS,
    });
    if (shown.exitCode !== 0) return [];
    const fprs: string[] = [];
    let primary = false;
    for (const line of shown.output.split('\n')) {
      const f = line.split(':');
      if (f[0] === 'pub') primary = true;
      else if (f[0] === 'sub') primary = false;
      else if (f[0] === 'fpr' && primary) {
        fprs.push(f[9]);
        primary = false;
      }
    }
    return fprs;
  } finally {
    await k.close();
  }
}
