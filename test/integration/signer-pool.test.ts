// The pooled signing keyrings of activities/repository/gpg.ts, with the real gpg: one keyring per
// set of keys, reused by later leases; each lease cancelled by its own signal only; a keyring whose
// signing failed is replaced; idle keyrings closed with their agents; homes of a process that
// exits are removed, and the homes of a killed one by the next process's sweep.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runChecked, runProcess } from '../../activities/exec/process';
import {
  closeIdleSigners,
  openSigner,
  pooledKeyrings,
  publicKeyOf,
  sweepStaleKeyrings,
} from '../../activities/repository/gpg';
import { rpmSignatureProblem, sweepStaleKeyDatabases } from '../../activities/repository/rpm-signature';
import { ROOT, tsxBin } from '../../cli/local-stack/tools';
import { otherSigningKey, testSigningKey } from '../helpers/packages';
import { tempDir } from '../helpers/stack';
import { testTempDir } from '../helpers/temp';

/** True when gpg, with only `publicKey`, accepts `signature` over `data`. */
async function verifies(publicKey: string, data: string, signature: string): Promise<boolean> {
  const dir = testTempDir('verify-');
  try {
    fs.writeFileSync(path.join(dir, 'key.asc'), publicKey);
    fs.writeFileSync(path.join(dir, 'data'), data);
    fs.writeFileSync(path.join(dir, 'data.asc'), signature);
    const env = { ...process.env, GNUPGHOME: dir };
    await runChecked('gpg', ['--batch', '--import', path.join(dir, 'key.asc')], { env });
    const r = await runProcess('gpg', ['--batch', '--verify', path.join(dir, 'data.asc'), path.join(dir, 'data')], {
      env,
    });
    return r.exitCode === 0;
  } finally {
    spawnSync('gpgconf', ['--homedir', dir, '--kill', 'all']);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** gpg-agent processes serving `home`. */
function agentsOf(home: string): number {
  const ps = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).stdout;
  return ps.split('\n').filter((l) => l.includes('gpg-agent') && l.includes(home)).length;
}

/** Agents of `home` left once they had up to 5 s to exit: `gpgconf --kill` returns when the agent
 * has been told to stop, and on a loaded machine its process may take a moment to go. */
async function agentsLeft(home: string): Promise<number> {
  const deadline = Date.now() + 5000;
  while (agentsOf(home) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return agentsOf(home);
}

describe('signing keyrings, pooled per key set', () => {
  let key: string;
  beforeAll(async () => {
    key = await testSigningKey();
    await closeIdleSigners();
  });
  afterAll(() => closeIdleSigners());

  it('keeps one keyring per key set for later leases and closes it, agent included, when idle', async () => {
    const first = await openSigner(key);
    const a = await first.detachSign('one');
    await first.close();
    const homes = await pooledKeyrings();
    expect(homes).toHaveLength(1);
    const second = await openSigner(key);
    const b = await second.detachSign('two');
    expect(await pooledKeyrings()).toEqual(homes);
    expect(await verifies(second.publicKey, 'one', a)).toBe(true);
    expect(await verifies(second.publicKey, 'two', b)).toBe(true);
    // Another key set has its own keyring; both keys sign during a rotation.
    const other = await otherSigningKey(tempDir('pool'), 'next');
    const both = await openSigner([key, other]);
    expect(await pooledKeyrings()).toHaveLength(2);
    expect(both.fingerprints).toHaveLength(2);
    await both.close();
    expect(agentsOf(homes[0])).toBe(1);
    // Held by `second`: not closed.
    await closeIdleSigners();
    expect(await pooledKeyrings()).toEqual(homes);
    await second.close();
    await closeIdleSigners();
    expect(await pooledKeyrings()).toEqual([]);
    expect(fs.existsSync(homes[0])).toBe(false);
    expect(await agentsLeft(homes[0])).toBe(0);
  });

  it('cancels only the lease whose signal is aborted', async () => {
    const stop = new AbortController();
    const doomed = await openSigner(key, stop.signal);
    const other = await openSigner(key);
    stop.abort(new Error('cancelled by the test'));
    await expect(doomed.clearsign('x')).rejects.toThrow();
    const text = await other.clearsign('still signing\n');
    expect(text).toContain('-----BEGIN PGP SIGNATURE-----');
    // The cancellation was not the keyring's fault: it stays in the pool.
    expect(await pooledKeyrings()).toHaveLength(1);
    await Promise.all([doomed.close(), other.close()]);
  });

  it('replaces a keyring whose signing failed', async () => {
    const lease = await openSigner(key);
    const [home] = await pooledKeyrings();
    // What a broken keyring looks like from here: its secret keys are gone and its agent stopped.
    spawnSync('gpgconf', ['--homedir', home, '--kill', 'all']);
    fs.rmSync(path.join(home, 'private-keys-v1.d'), { recursive: true, force: true });
    await expect(lease.detachSign('x')).rejects.toThrow(/gpg/);
    await lease.close();
    expect(fs.existsSync(home)).toBe(false);
    const fresh = await openSigner(key);
    expect(await pooledKeyrings()).not.toContain(home);
    expect(await verifies(fresh.publicKey, 'y', await fresh.detachSign('y'))).toBe(true);
    await fresh.close();
  });

  it("removes homes when their process exits, and a killed process's homes at the next sweep", async () => {
    const dir = tempDir('pool-child');
    const script = path.join(dir, 'child.ts');
    fs.writeFileSync(
      script,
      [
        `import { openSigner } from ${JSON.stringify(path.join(ROOT, 'activities/repository/gpg'))};`,
        `import fs from 'node:fs';`,
        'void (async () => {',
        `  const s = await openSigner(fs.readFileSync(${JSON.stringify(path.join(dir, 'key.asc'))}, 'utf8'));`,
        `  await s.detachSign('x');`,
        `  await s.close();`,
        `  console.log('signed');`,
        `  if (process.argv[2] === 'hang') setInterval(() => undefined, 1000);`,
        '})();',
        '',
      ].join('\n'),
    );
    fs.writeFileSync(path.join(dir, 'key.asc'), key);
    // The children's temp directory is their own: other test files' processes (the other lane's
    // publishes) make keyrings in the machine's at the same time.
    const tmp = testTempDir('pool-tmp-');
    const env = { ...process.env, TMPDIR: tmp };
    /** Keyring homes by owner pid (homes of older versions have no owner file). */
    const owners = () =>
      new Map(
        fs
          .readdirSync(tmp)
          .filter((n) => n.startsWith('cgpg-'))
          .flatMap((n): [string, string][] => {
            const home = path.join(tmp, n);
            try {
              return [[home, fs.readFileSync(path.join(home, '.conveyor-owner'), 'utf8').split(' ')[0]]];
            } catch {
              return [];
            }
          }),
      );
    const before = owners();

    // A normal exit: the pooled keyring does not outlive its process.
    const done = await runProcess(tsxBin(), [script], { env });
    expect(done.output).toContain('signed');

    expect(done.exitCode).toBe(0);
    expect([...owners().keys()].filter((h) => !before.has(h))).toEqual([]);

    // Killed: its home (with the private key) stays until another process sweeps.
    const child = spawn(tsxBin(), [script, 'hang'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => d.includes('signed') && resolve()));
      // tsx runs the script in a node process of its own: the owner is the one that called openSigner.
      const left = [...owners()].filter(([h, pid]) => !before.has(h) && pid !== String(process.pid));
      expect(left).toHaveLength(1);
      const [[home, pid]] = left;
      process.kill(Number(pid), 'SIGKILL');
      await new Promise((r) => setTimeout(r, 300));
      expect(fs.existsSync(path.join(home, 'private-keys-v1.d'))).toBe(true);
      expect(await sweepStaleKeyrings(tmp)).toContain(home);
      expect(fs.existsSync(home)).toBe(false);
      expect(await agentsLeft(home)).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60000);

  it('sweeps by owner: gone or another process with the same pid, never a live owner, a fresh home or another PID namespace', async () => {
    const dir = tempDir('sweep');
    const home = (name: string, owner?: string, ageMinutes = 0) => {
      const h = path.join(dir, `cgpg-${name}`);
      fs.mkdirSync(h);
      if (owner !== undefined) fs.writeFileSync(path.join(h, '.conveyor-owner'), owner);
      const t = (Date.now() - ageMinutes * 60_000) / 1000;
      fs.utimesSync(h, t, t);
      return h;
    };
    const exited = spawnSync('true').pid;
    const self = fs.readFileSync('/proc/self/stat', 'utf8');
    const start = self.slice(self.lastIndexOf(')') + 2).split(' ')[19];
    const ns = fs.readlinkSync('/proc/self/ns/pid');
    const homes = {
      gone: home('gone', `${exited} 12345`),
      reused: home('reused', `${process.pid} ${Number(start) + 1}`),
      live: home('live', `${process.pid} ${start}`),
      fresh: home('fresh'),
      old: home('old', undefined, 11),
      // Owner lines of this version name the owner's PID namespace.
      goneHere: home('gone-here', `${exited} 12345 ${ns}`),
      liveHere: home('live-here', `${process.pid} ${start} ${ns}`),
      // A worker in another container sharing the directory: its pid says nothing here.
      elsewhere: home('elsewhere', `${exited} 12345 pid:[1]`, 60),
      unknown: home('unknown', `${exited} 12345 ?`, 60),
    };
    const removed = await sweepStaleKeyrings(dir);
    expect(removed.sort()).toEqual([homes.gone, homes.goneHere, homes.old, homes.reused].sort());
    for (const kept of [homes.live, homes.fresh, homes.liveHere, homes.elsewhere, homes.unknown]) {
      expect([kept, fs.existsSync(kept)]).toEqual([kept, true]);
    }
  });
  it('marks the rpm key database with its owner, and sweeps only those whose owner is gone', async () => {
    const dir = testTempDir('rpmkeys-');
    const exited = spawnSync('true').pid;
    const self = fs.readFileSync('/proc/self/stat', 'utf8');
    const start = self.slice(self.lastIndexOf(')') + 2).split(' ')[19];
    const ns = fs.readlinkSync('/proc/self/ns/pid');
    const owned = (name: string, owner: string) => {
      const d = path.join(dir, name);
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, '.conveyor-owner'), owner);
      return d;
    };
    const left = owned('rpmkey-left', `${exited} 12345 ${ns}`);
    const live = owned('rpmkey-live', `${process.pid} ${start} ${ns}`);
    const keyring = owned('cgpg-other', `${exited} 12345 ${ns}`);
    const older = path.join(dir, 'rpmkey-older-version');
    fs.mkdirSync(older);
    const t = (Date.now() - 3600_000) / 1000;
    fs.utimesSync(older, t, t);
    expect(await sweepStaleKeyDatabases(dir)).toEqual([left]);
    expect([live, keyring, older].map((d) => fs.existsSync(d))).toEqual([true, true, true]);

    // A real check makes this process's database, named as its own. Other test files' processes
    // make theirs in the same directory meanwhile: only the ones naming this process count.
    const ownerOf = (name: string) => {
      try {
        return fs.readFileSync(path.join(os.tmpdir(), name, '.conveyor-owner'), 'utf8').trim();
      } catch {
        return '';
      }
    };
    const databases = () =>
      fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('rpmkey-') && ownerOf(n).startsWith(`${process.pid} `));
    // Earlier test files in this jest worker (the same process) may have left theirs until exit.
    const before = new Set(databases());
    const key = { fingerprint: 'F'.repeat(40), publicKey: await publicKeyOf(await testSigningKey()) };
    expect(await rpmSignatureProblem(path.join(dir, 'missing.rpm'), key)).toBeDefined();
    const made = databases().filter((n) => !before.has(n));
    expect(made).toHaveLength(1);
    expect(ownerOf(made[0]).split(' ')).toEqual([String(process.pid), start, ns]);
  });
});
