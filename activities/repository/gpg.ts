// OpenPGP signing with a throwaway keyring. The armored private key is written only into a fresh
// GNUPGHOME (mode 0700, removed with its gpg-agent afterwards), never into the user's keyring,
// never into an argv or a log line. `--batch --pinentry-mode loopback` keeps gpg from ever asking a
// terminal. The home lives under os.tmpdir(), not the work dir: gpg-agent's socket path must fit
// in 108 bytes. RSA 4096 because it is the one key type every apt, rpm and dnf verifies.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runChecked, runProcess } from '../exec/process';
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

async function openKeyring(): Promise<Keyring> {
  const home = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'cgpg-'));
  await fs.promises.chmod(home, 0o700);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LANG: 'C', LC_ALL: 'C', HOME: home, GNUPGHOME: home };
  let n = 0;
  return {
    home,
    env,
    gpg: which('gpg'),
    scratch: (name) => path.join(home, `${++n}-${name}`),
    async close() {
      // The agent holds the unlocked key in memory: stop it before its directory goes.
      await runProcess('gpgconf', ['--homedir', home, '--kill', 'all'], { env }).catch(() => undefined);
      await fs.promises.rm(home, { recursive: true, force: true });
    },
  };
}

/** Fingerprints of the secret primary keys in the keyring. */
async function secretFingerprints(k: Keyring): Promise<string[]> {
  const out = await runChecked(k.gpg, ['--homedir', k.home, '--batch', '--with-colons', '--list-secret-keys'], {
    env: k.env,
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
async function importPrivate(k: Keyring, armoredPrivate: string, signal?: AbortSignal): Promise<string | undefined> {
  const before = await secretFingerprints(k);
  const keyFile = k.scratch('key.asc');
  await fs.promises.writeFile(keyFile, armoredPrivate, { mode: 0o600 });
  const imported = await runProcess(k.gpg, ['--homedir', k.home, ...NO_PROMPT, '--import', keyFile], {
    env: k.env,
    signal,
  });
  await fs.promises.rm(keyFile, { force: true });
  signal?.throwIfAborted();
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
  });
  const text = await fs.promises.readFile(output, 'utf8');
  await fs.promises.rm(output, { force: true });
  return text;
}

/** A signer for one key, or for several (a rotation's overlap: the first is the primary, every one
 * signs the indexes, so a client trusting either key accepts them). */
export async function openSigner(armoredPrivate: string | string[], signal?: AbortSignal): Promise<Signer> {
  const k = await openKeyring();
  try {
    const keys = [...new Set(typeof armoredPrivate === 'string' ? [armoredPrivate] : armoredPrivate)];
    const fingerprints: string[] = [];
    for (const key of keys) {
      const fpr = await importPrivate(k, key, signal);
      if (fpr) fingerprints.push(fpr);
    }
    if (fingerprints.length !== keys.length) {
      throw nonRetryable(
        RepositoryFailure.BadConfig,
        'signing.nextKeyFile / nextKeyEnv holds the same key as signing.keyFile / keyEnv, or no private key: ' +
          'give it the new key (`gpg --armor --export-secret-keys <id>`)',
      );
    }
    const fingerprint = fingerprints[0];
    const publicKey = await exportKey(k, ['--export', fingerprint], signal);
    const publicKeys =
      fingerprints.length === 1 ? publicKey : await exportKey(k, ['--export', ...fingerprints], signal);
    const gpgSign = async (data: string | Buffer, mode: '--clearsign' | '--detach-sign') => {
      const input = k.scratch('in');
      const output = k.scratch('out');
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
        { env: k.env, signal },
      );
      const signed = await fs.promises.readFile(output, 'utf8');
      await Promise.all([input, output].map((f) => fs.promises.rm(f, { force: true })));
      return signed;
    };
    return {
      fingerprint,
      fingerprints,
      publicKey,
      publicKeys,
      clearsign: (text) => gpgSign(text, '--clearsign'),
      detachSign: (data) => gpgSign(data, '--detach-sign'),
      async signRpms(files) {
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
      },
      close: () => k.close(),
    };
  } catch (err) {
    await k.close();
    throw err;
  }
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
