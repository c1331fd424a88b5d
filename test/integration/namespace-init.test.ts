// A bwrap sandbox's PID 1 is killed with the step's process group (activities/exec/namespace-init.ts).
// bwrap here runs without --die-with-parent: that is exactly the state of a PID 1 whose parent died
// before it set its parent-death signal (a cancellation right after the start, on a loaded machine),
// made deterministic. The first test shows that state outlives the group kill; the second, that
// runProcess with `namespaceInit` leaves nothing behind and settles.
import { PassThrough } from 'node:stream';
import { readNamespaceInit } from '../../activities/exec/namespace-init';
import { runChecked, runProcess, type RunOptions } from '../../activities/exec/process';
import { bwrapPath } from '../../activities/fleet/local-host';

const marker = () => `sleep 93${Math.floor(Math.random() * 90) + 10}`;

/** Processes whose command line holds `m`: bwrap, its PID 1, the two shells and the two sleeps. */
async function leftovers(m: string, exact = false): Promise<number> {
  const ps = await runChecked('ps', ['-eo', 'args']);
  return ps.split('\n').filter((l) => (exact ? l.trim() === m : l.includes(m) && !l.includes('ps -eo'))).length;
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** bwrap as the local executor starts it, minus --die-with-parent, reporting its PID 1 on fd 3. */
function start(m: string, opts: RunOptions) {
  const args = ['--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', '--unshare-pid', '--new-session'];
  args.push('--info-fd', '3', '/bin/sh', '-c', `(${m}; echo late) & ${m}; echo never`);
  return runProcess(bwrapPath(), args, { extraFds: ['pipe'], ...opts });
}

describe("bwrap's PID 1 dies with the process group", () => {
  it('without namespaceInit, the namespace outlives the group kill (the state being guarded against)', async () => {
    const m = marker();
    const abort = new AbortController();
    const run = start(m, { signal: abort.signal });
    await until(async () => (await leftovers(m, true)) === 2, 'the sleeps');
    expect(await leftovers(m)).toBe(6);
    abort.abort();
    // bwrap itself is gone after SIGTERM (and SIGKILL 5 s later); its PID 1, in a session of its
    // own, and everything under it are not.
    await new Promise((r) => setTimeout(r, 6000));
    expect(await leftovers(m)).toBe(5);
    await runProcess('pkill', ['-KILL', '-f', `^${m}$`]);
    await runProcess('pkill', ['-KILL', '-f', `bwrap .*${m}`]);
    expect(await run).toMatchObject({ cancelled: true });
  }, 60_000);

  it('with namespaceInit, cancellation kills PID 1, every process of the namespace goes, and the run settles', async () => {
    const m = marker();
    const abort = new AbortController();
    const run = start(m, {
      signal: abort.signal,
      namespaceInit: (child) => readNamespaceInit(child.stdio[3] as NodeJS.ReadableStream),
    });
    await until(async () => (await leftovers(m, true)) === 2, 'the sleeps');
    abort.abort();
    expect(await run).toMatchObject({ cancelled: true });
    await until(async () => (await leftovers(m)) === 0, 'no process of the namespace left');
  }, 60_000);

  it('a quick command is over before its PID 1 is read: nothing to kill, no error', async () => {
    const r = await runProcess(bwrapPath(), ['--ro-bind', '/', '/', '--unshare-pid', '--info-fd', '3', 'true'], {
      extraFds: ['pipe'],
      namespaceInit: (child) => readNamespaceInit(child.stdio[3] as NodeJS.ReadableStream),
    });
    expect(r.exitCode).toBe(0);
  });

  it('refuses an info stream without a PID 1', async () => {
    for (const [text, message] of [
      ['{"child-pid": "1; rm -rf /"}', /bwrap reported no PID 1/],
      ['{"child-pid": 1}', /bwrap reported no PID 1/],
      ['{"cgroup-namespace": 4026531835}', /bwrap reported no PID 1/],
    ] as const) {
      const s = new PassThrough();
      const read = readNamespaceInit(s);
      s.end(text);
      await expect(read).rejects.toThrow(message);
    }
    const empty = new PassThrough();
    const read = readNamespaceInit(empty);
    empty.end();
    await expect(read).rejects.toThrow('bwrap gave no PID (nothing)');
  });
});
