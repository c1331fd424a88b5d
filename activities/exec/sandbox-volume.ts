// The sandboxed step's workspace volume: the checkout, $CONVEYOR_OUT and any further writable
// directory live in it, and its size is the step's disk limit (sandbox.limits.diskMb).
//
// `loop` (builder runs as root, loop devices available): a sparse file of diskMb holding an ext4
// file system without journal or reserved blocks, loop-mounted nodev,nosuid. The kernel stops the
// step's writes with ENOSPC at the limit, whatever their speed; usage is one statfs. The sparse
// file takes only what the step writes from the host's disk.
// `watch` (anywhere else): a plain directory whose usage is summed every second, the step killed
// once it is over the limit; RLIMIT_FSIZE (sandbox.ts) stops a single file at the limit between
// two samples, so the step can overshoot by at most what it writes to other files in a second.
import fs from 'node:fs';
import path from 'node:path';
import { runChecked } from './process';

export type DiskMechanism = 'loop' | 'watch';

export interface VolumeSample {
  usedBytes: number;
  /** The limit was reached: the file system is full (`loop`) or usage is over the limit (`watch`). */
  full: boolean;
}

export interface SandboxVolume {
  /** Host path of the volume's root, owned by root; the step's directories are made inside. */
  path: string;
  mechanism: DiskMechanism;
  limitBytes: number;
  sample(): VolumeSample;
  /** Unmounts and deletes the volume (the caller removes the directory around it). */
  release(): Promise<void>;
}

const MB = 1024 * 1024;

function sbin(name: string): string {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  return name;
}

/** Tools need a PATH even when the worker's is odd; nothing of the worker's environment is passed on. */
const TOOL_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };

export async function createVolume(
  dir: string,
  mechanism: DiskMechanism,
  diskMb: number,
  signal?: AbortSignal,
): Promise<SandboxVolume> {
  const mount = path.join(dir, 'vol');
  fs.mkdirSync(mount, { mode: 0o755 });
  const limitBytes = diskMb * MB;
  if (mechanism === 'watch') {
    return {
      path: mount,
      mechanism,
      limitBytes,
      sample: () => {
        const used = usage(mount);
        return { usedBytes: used, full: used > limitBytes };
      },
      release: () => Promise.resolve(),
    };
  }
  const image = path.join(dir, 'disk.img');
  const fd = fs.openSync(image, 'wx', 0o600);
  try {
    fs.ftruncateSync(fd, limitBytes);
  } finally {
    fs.closeSync(fd);
  }
  // No journal (a scratch file system has nothing to recover after a crash), no blocks reserved for
  // root (the step must get all of diskMb), lazy inode tables (mkfs takes milliseconds).
  await runChecked(
    sbin('mkfs.ext4'),
    ['-q', '-F', '-m', '0', '-O', '^has_journal', '-E', 'lazy_itable_init=1,nodiscard', image],
    { env: TOOL_ENV, signal },
  );
  await runChecked(sbin('mount'), ['-o', 'loop,nodev,nosuid', image, mount], { env: TOOL_ENV, signal });
  fs.chmodSync(mount, 0o755);
  let released = false;
  return {
    path: mount,
    mechanism,
    limitBytes,
    sample: () => {
      const s = fs.statfsSync(mount);
      const used = (s.blocks - s.bfree) * s.bsize;
      return { usedBytes: used, full: s.bavail * s.bsize < MB || s.ffree === 0 };
    },
    release: async () => {
      if (released) return;
      released = true;
      // Every process of the step is gone by now; a lazy unmount still frees the mount point if
      // something (a shell in the directory, an indexer) holds it.
      const r = await runChecked(sbin('umount'), [mount], { env: TOOL_ENV }).then(
        () => true,
        () => false,
      );
      if (!r) await runChecked(sbin('umount'), ['-l', mount], { env: TOOL_ENV });
      fs.rmSync(image, { force: true });
    },
  };
}

/** Bytes allocated under `root` (like `du`), symlinks not followed, each inode counted once. */
function usage(root: string): number {
  let total = 0;
  const seen = new Set<string>();
  const visit = (p: string) => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return; // removed meanwhile
    }
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return;
    seen.add(id);
    total += st.blocks * 512;
    if (st.isDirectory()) {
      let names: string[] = [];
      try {
        names = fs.readdirSync(p);
      } catch {
        return;
      }
      for (const n of names) visit(path.join(p, n));
    }
  };
  visit(root);
  return total;
}

/** Whether loop-mounted volumes work here: a small one is made, mounted and removed in `scratch`. */
export async function probeLoopVolume(scratch: string): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'the builder does not run as root (loop mounts need root)';
  const dir = fs.mkdtempSync(path.join(scratch, '.probe-volume-'));
  let v: SandboxVolume | undefined;
  try {
    v = await createVolume(dir, 'loop', 16);
    fs.writeFileSync(path.join(v.path, 'probe'), 'ok');
    return undefined;
  } catch (err) {
    return (err as Error).message.split('\n').slice(0, 3).join(' ').slice(0, 300);
  } finally {
    await v?.release().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
