// A control group per sandboxed step: the memory and process limits bwrap itself does not have,
// the counters that say which limit a failed step hit, CPU time, and a kill that reaches every
// process the step started. See sandbox.ts for where each mechanism holds.
//
// cgroup v2 (unified): one directory for all controllers. A non-root cgroup that holds processes
// cannot give controllers to children ("no internal processes"), and the builder's own cgroup holds
// the builder, so the steps' parent is `<cgroup2 mount>/conveyor`, under the root (writable by root
// only; systemd leaves a top-level cgroup it did not make alone). Inside a cgroup namespace whose
// root holds processes (a container) that fails, and the probe falls back to rlimits.
// memory.oom.group makes an OOM kill take the whole step, not one victim.
// cgroup v1 (legacy or hybrid): one directory per controller, nested under the builder's own cgroup
// of that controller, so a limit placed on the builder (by systemd or a container) still bounds its
// steps. v1 memory.failcnt counts every reclaim at the limit (page cache included), so only
// oom_kill in memory.oom_control (kernel ≥ 4.13) says that the step ran out of memory.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export type Controller = 'memory' | 'pids' | 'cpu';

/** Where each controller of a step's cgroup is written. */
export interface CgroupLayout {
  version: 1 | 2;
  /** The parent directory of the steps' cgroups, per controller (one and the same on v2). */
  parents: Partial<Record<Controller, string>>;
}

export interface CgroupProbe {
  layout?: CgroupLayout;
  /** Why a controller is missing, for the builder's start-up description. */
  notes: string[];
}

interface MountEntry {
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const [fsType, , superOptions = ''] = right.split(' ');
    out.push({ mountPoint: fields[4] ?? '', fsType, superOptions: superOptions.split(',') });
  }
  return out;
}

/** `/proc/self/cgroup` lines → controller (or '' for v2) → path. */
function parseSelfCgroup(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (!match) continue;
    if (match[1] === '') m.set('', match[2]);
    for (const c of match[1].split(',')) if (c) m.set(c, match[2]);
  }
  return m;
}

function tryWrite(file: string, value: string): boolean {
  try {
    fs.writeFileSync(file, value);
    return true;
  } catch {
    return false;
  }
}

/** A directory under `parent` can be made, holds `files`, and goes away again. */
function canMakeChild(parent: string, files: string[]): boolean {
  const probe = path.join(parent, `probe-${crypto.randomBytes(4).toString('hex')}`);
  try {
    fs.mkdirSync(probe);
  } catch {
    return false;
  }
  try {
    return files.every((f) => fs.existsSync(path.join(probe, f)));
  } finally {
    try {
      fs.rmdirSync(probe);
    } catch {
      /* left for the next start; empty cgroups cost nothing */
    }
  }
}

export interface CgroupProbeInput {
  mountinfo?: string;
  selfCgroup?: string;
}

/** Finds the cgroup controllers the builder can give its steps. Never throws. */
export function probeCgroups(input: CgroupProbeInput = {}): CgroupProbe {
  const notes: string[] = [];
  let mounts: MountEntry[];
  let self: Map<string, string>;
  try {
    mounts = parseMountinfo(input.mountinfo ?? fs.readFileSync('/proc/self/mountinfo', 'utf8'));
    self = parseSelfCgroup(input.selfCgroup ?? fs.readFileSync('/proc/self/cgroup', 'utf8'));
  } catch (err) {
    return { notes: [`cgroups unreadable (${(err as Error).message})`] };
  }

  const v2 = mounts.find((m) => m.fsType === 'cgroup2');
  if (v2) {
    const rootControllers = readWords(path.join(v2.mountPoint, 'cgroup.controllers'));
    if (rootControllers.includes('memory') && rootControllers.includes('pids')) {
      // Only a cgroup without processes of its own may delegate controllers, and the builder's own
      // cgroup holds the builder: the parent goes under the root, which is exempt from that rule.
      const base = v2.mountPoint;
      const parent = path.join(base, 'conveyor');
      const enabled =
        enableControllers(path.join(base, 'cgroup.subtree_control'), ['memory', 'pids']) &&
        mkdirOk(parent) &&
        enableControllers(path.join(parent, 'cgroup.subtree_control'), ['memory', 'pids']) &&
        canMakeChild(parent, ['memory.max', 'pids.max', 'cgroup.procs']);
      // v2 keeps the parent: it carries the subtree_control the steps' cgroups need.
      if (enabled) {
        return { layout: { version: 2, parents: { memory: parent, pids: parent, cpu: parent } }, notes };
      }
      notes.push(`cgroup v2 at ${v2.mountPoint}: cannot create ${parent} with the memory and pids controllers`);
    } else if (rootControllers.length > 0 || !mounts.some((m) => m.fsType === 'cgroup')) {
      notes.push(
        `cgroup v2 at ${v2.mountPoint} offers no memory/pids controllers (${rootControllers.join(' ') || 'none'})`,
      );
    }
  }

  const parents: Partial<Record<Controller, string>> = {};
  const wanted: [Controller, string, string[]][] = [
    ['memory', 'memory', ['memory.limit_in_bytes', 'cgroup.procs']],
    ['pids', 'pids', ['pids.max', 'cgroup.procs']],
    ['cpu', 'cpuacct', ['cpuacct.usage', 'cgroup.procs']],
  ];
  for (const [controller, name, files] of wanted) {
    const mount = mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.includes(name));
    if (!mount) {
      notes.push(`no cgroup v1 ${name} controller mounted`);
      continue;
    }
    const parent = path.join(mount.mountPoint, self.get(name) ?? '/', 'conveyor');
    const existed = fs.existsSync(parent);
    if (mkdirOk(parent) && canMakeChild(parent, files)) parents[controller] = parent;
    else notes.push(`cgroup v1 ${name}: cannot create cgroups under ${path.dirname(parent)}`);
    // v1 parents are made per step and removed when empty: the builder's own cgroup may belong to
    // a supervisor that wants to remove it when the builder is gone.
    if (!existed) rmdirQuiet(parent);
  }
  if (Object.keys(parents).length === 0) return { notes };
  return { layout: { version: 1, parents }, notes };
}

function rmdirQuiet(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    /* in use by another step, or gone */
  }
}

function readWords(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

function mkdirOk(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { recursive: true });
    return true;
  } catch {
    return false;
  }
}

function enableControllers(subtreeControl: string, controllers: string[]): boolean {
  const have = readWords(subtreeControl);
  const missing = controllers.filter((c) => !have.includes(c));
  if (missing.length === 0) return true;
  return tryWrite(subtreeControl, missing.map((c) => `+${c}`).join(' '));
}

export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
}

/** What the kernel counted while the step ran. */
export interface CgroupEvents {
  /** A process was killed for memory (the cgroup's limit, not the machine's). */
  memoryOom: boolean;
  /** A fork or clone failed at pids.max. */
  pidsMax: boolean;
}

export interface StepCgroup {
  /** cgroup.procs files the step's first process writes its pid into before it execs bwrap. */
  procsFiles: string[];
  /** Which limits each controller enforces here. */
  enforces: { memory: boolean; pids: boolean; cpu: boolean };
  events(): CgroupEvents;
  /** CPU seconds used by all the step's processes so far (undefined without accounting). */
  cpuSeconds(): number | undefined;
  /** Kills every process in the cgroup and waits until it is empty (or `timeoutMs` passed). */
  killAll(timeoutMs?: number): Promise<boolean>;
  remove(): void;
}

/** Creates the step's cgroup(s) with the limits written; throws when the kernel refuses a limit. */
export function createStepCgroup(layout: CgroupLayout, name: string, limits: CgroupLimits): StepCgroup {
  const dirs = new Map<Controller, string>();
  const made: string[] = [];
  const removeAll = () => {
    for (const d of [...made].reverse()) {
      rmdirQuiet(d);
      if (layout.version === 1) rmdirQuiet(path.dirname(d));
    }
  };
  try {
    for (const [controller, parent] of Object.entries(layout.parents) as [Controller, string][]) {
      const dir = path.join(parent, name);
      if (!made.includes(dir)) {
        // A concurrent step may remove the (empty) v1 parent between the two mkdirs: try again.
        for (let attempt = 0; ; attempt++) {
          try {
            fs.mkdirSync(dir, { recursive: true });
            break;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw err;
          }
        }
        made.push(dir);
      }
      dirs.set(controller, dir);
    }
    const mem = dirs.get('memory');
    const pids = dirs.get('pids');
    if (layout.version === 2) {
      if (mem) {
        fs.writeFileSync(path.join(mem, 'memory.max'), String(limits.memoryBytes));
        // No swap: a step over its memory is stopped, not slowed down into the machine's swap.
        tryWrite(path.join(mem, 'memory.swap.max'), '0');
        tryWrite(path.join(mem, 'memory.oom.group'), '1');
      }
      if (pids) fs.writeFileSync(path.join(pids, 'pids.max'), String(limits.pids));
    } else {
      if (mem) {
        fs.writeFileSync(path.join(mem, 'memory.limit_in_bytes'), String(limits.memoryBytes));
        // memsw (memory + swap) must be ≥ the memory limit: written after it. Absent without swap accounting.
        tryWrite(path.join(mem, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
      }
      if (pids) fs.writeFileSync(path.join(pids, 'pids.max'), String(limits.pids));
    }
  } catch (err) {
    removeAll();
    throw err;
  }

  const unique = [...new Set(dirs.values())];
  const read = (dir: string | undefined, file: string) => {
    if (!dir) return '';
    try {
      return fs.readFileSync(path.join(dir, file), 'utf8');
    } catch {
      return '';
    }
  };
  const counter = (text: string, key: string) => {
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  const pidsIn = (): number[] => {
    const all = new Set<number>();
    for (const d of unique) {
      for (const l of read(d, 'cgroup.procs').split('\n')) if (l.trim()) all.add(Number(l));
    }
    return [...all];
  };

  return {
    procsFiles: unique.map((d) => path.join(d, 'cgroup.procs')),
    enforces: { memory: dirs.has('memory'), pids: dirs.has('pids'), cpu: dirs.has('cpu') },
    events() {
      const mem = dirs.get('memory');
      const pids = dirs.get('pids');
      return layout.version === 2
        ? {
            memoryOom: counter(read(mem, 'memory.events'), 'oom_kill') > 0,
            pidsMax: counter(read(pids, 'pids.events'), 'max') > 0,
          }
        : {
            memoryOom: counter(read(mem, 'memory.oom_control'), 'oom_kill') > 0,
            pidsMax: counter(read(pids, 'pids.events'), 'max') > 0,
          };
    },
    cpuSeconds() {
      const cpu = dirs.get('cpu');
      if (!cpu) return undefined;
      if (layout.version === 2) return counter(read(cpu, 'cpu.stat'), 'usage_usec') / 1e6;
      const ns = Number(read(cpu, 'cpuacct.usage').trim());
      return Number.isFinite(ns) ? ns / 1e9 : undefined;
    },
    async killAll(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = pidsIn();
        if (left.length === 0) return true;
        if (Date.now() > deadline) return false;
        // cgroup.kill (v2, Linux ≥ 5.14) kills atomically, also processes forked meanwhile.
        if (layout.version !== 2 || !tryWrite(path.join(unique[0], 'cgroup.kill'), '1')) {
          for (const pid of left) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              /* gone already */
            }
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    remove() {
      removeAll();
    },
  };
}
