// The sandbox's settings (conveyor.yml `sandbox`, per repository and for the workers) and the
// cgroup bookkeeping that the machine running the tests cannot show: cgroup v2 (this machine kind
// has v1 controllers), exercised on a directory laid out like one.
import fs from 'node:fs';
import path from 'node:path';
import { createStepCgroup } from '../../activities/exec/sandbox-cgroup';
import { DEFAULT_SANDBOX, sandboxOf, stepHasNetwork } from '../../common/sandbox';
import { ConfigError, loadConfig, repositorySpec } from '../../config/conveyor';
import { testTempDir } from '../helpers/temp';

function write(text: string): string {
  const dir = testTempDir('conveyor-sandbox-config-');
  const file = path.join(dir, 'conveyor.yml');
  fs.writeFileSync(file, text);
  return file;
}

const config = (repoExtra: string, top = '') => `
storage: { artifacts: s3://a-bucket, staging: s3://s-bucket, production: s3://p-bucket }
distros: { bookworm: { format: deb, codename: bookworm, arch: amd64 } }
${top}
repositories:
  - name: acme/widget
    cloneUrl: repos/widget.git
    branches: [{ match: main, channel: unstable }]
    steps: { unit: make test }
    distros: [bookworm]
${repoExtra}
`;

describe('sandbox settings in conveyor.yml', () => {
  it('sandboxes by default: bwrap, no network, 4096 MB, 512 processes, 10240 MB, uid 65534', () => {
    const cfg = loadConfig(write(config('')), {});
    expect(cfg.sandbox).toEqual({ uid: 65534, gid: 65534 });
    expect(cfg.repositories[0].sandbox).toEqual(DEFAULT_SANDBOX);
    const spec = repositorySpec(cfg, cfg.repositories[0], cfg.repositories[0].branches[0]);
    expect(spec.sandbox).toEqual({
      mode: 'bwrap',
      network: false,
      limits: { memoryMb: 4096, pids: 512, diskMb: 10240 },
    });
  });

  it('takes the mode, network for some steps and limits of a repository', () => {
    const cfg = loadConfig(
      write(
        config(
          '    sandbox: { mode: none, network: [package, e2e], limits: { memoryMb: 256, cpuSeconds: 600 } }',
          'sandbox: { uid: 64000, gid: 64000 }',
        ),
      ),
      {},
    );
    expect(cfg.sandbox).toEqual({ uid: 64000, gid: 64000 });
    const spec = repositorySpec(cfg, cfg.repositories[0], cfg.repositories[0].branches[0]);
    expect(spec.sandbox).toEqual({
      mode: 'none',
      network: ['package', 'e2e'],
      limits: { memoryMb: 256, pids: 512, diskMb: 10240, cpuSeconds: 600 },
    });
    expect(stepHasNetwork(spec.sandbox!, 'package')).toBe(true);
    expect(stepHasNetwork(spec.sandbox!, 'unit')).toBe(false);
  });

  it('refuses root as the sandbox uid, unknown modes, unknown steps and tiny limits, each by path', () => {
    let err: ConfigError | undefined;
    try {
      loadConfig(
        write(
          config(
            '    sandbox: { mode: docker, network: [unit, smoke], limits: { memoryMb: 8, pids: 2 } }',
            'sandbox: { uid: 0 }',
          ),
        ),
        {},
      );
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = err!.problems.join('\n');
    expect(text).toContain('sandbox.uid: must not be 0: steps never run as root');
    expect(text).toMatch(/repositories\[0\]\.sandbox\.mode: /);
    expect(text).toMatch(/repositories\[0\]\.sandbox\.network(\[1\])?: /);
    expect(text).toMatch(/repositories\[0\]\.sandbox\.limits\.memoryMb: /);
    expect(text).toMatch(/repositories\[0\]\.sandbox\.limits\.pids: /);
  });

  it('gives runs whose input has no sandbox (started before it existed) the defaults, never less', () => {
    expect(sandboxOf(undefined)).toEqual(DEFAULT_SANDBOX);
    expect(
      sandboxOf({ mode: 'bwrap', network: true, limits: { memoryMb: 100, pids: 20, diskMb: 100 } }).limits,
    ).toEqual({ memoryMb: 100, pids: 20, diskMb: 100 });
  });
});

describe('step cgroups on cgroup v2', () => {
  it('writes memory.max, memory.swap.max, memory.oom.group and pids.max, and reads the kill counters', () => {
    const parent = testTempDir('conveyor-cgroup-v2-');
    const cg = createStepCgroup({ version: 2, parents: { memory: parent, pids: parent, cpu: parent } }, 'unit-1', {
      memoryBytes: 256 * 1024 * 1024,
      pids: 64,
    });
    const dir = path.join(parent, 'unit-1');
    const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
    expect(read('memory.max')).toBe(String(256 * 1024 * 1024));
    expect(read('memory.swap.max')).toBe('0');
    expect(read('memory.oom.group')).toBe('1');
    expect(read('pids.max')).toBe('64');
    // One directory for every controller: the step's first process writes its pid once.
    expect(cg.procsFiles).toEqual([path.join(dir, 'cgroup.procs')]);
    expect(cg.events()).toEqual({ memoryOom: false, pidsMax: false });
    fs.writeFileSync(path.join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 1\n');
    fs.writeFileSync(path.join(dir, 'pids.events'), 'max 3\n');
    fs.writeFileSync(path.join(dir, 'cpu.stat'), 'usage_usec 2500000\nuser_usec 2000000\n');
    expect(cg.events()).toEqual({ memoryOom: true, pidsMax: true });
    expect(cg.cpuSeconds()).toBe(2.5);
    fs.rmSync(parent, { recursive: true, force: true });
  });

  it('does not take memory.max events (reclaim at the limit) for an OOM kill', () => {
    const parent = testTempDir('conveyor-cgroup-v2-');
    const cg = createStepCgroup({ version: 2, parents: { memory: parent, pids: parent } }, 'unit-2', {
      memoryBytes: 64 * 1024 * 1024,
      pids: 16,
    });
    fs.writeFileSync(path.join(parent, 'unit-2', 'memory.events'), 'max 40\noom 0\noom_kill 0\n');
    expect(cg.events().memoryOom).toBe(false);
    fs.rmSync(parent, { recursive: true, force: true });
  });
});
