// The sandbox of repository steps against the real bubblewrap, cgroups, loop volumes and
// slirp4netns of this machine: a hostile step, run through the same runStep / withStepWorkspace
// the build workers use, tries what issue 11 lists, and we check both its log and the machine.
// Where a check could pass for the wrong reason, a control shows the same probe succeeding
// unsandboxed (sandbox.mode none) or with a larger limit.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRunStep, withStepWorkspace, type RunStepDeps } from '../../activities/exec/run-step';
import { createSandboxHost } from '../../activities/exec/sandbox';
import { commitSample, type PushedCommit } from '../../cli/demo/sample-repo';
import type { CommandFailureDetails } from '../../common/failures';
import { DEFAULT_SANDBOX } from '../../common/sandbox';
import type { RunStepInput, SandboxSpec, StepResult } from '../../common/types';
import { parseS3Url } from '../../config/conveyor';
import { awsFor, silentLogger, tempDir, testConfig, uid } from '../helpers/stack';

jest.setTimeout(180_000);

describe('sandbox of repository steps (bubblewrap)', () => {
  let s3: S3Client;
  let deps: RunStepDeps;
  let dir: string;
  let bare: string;
  let commit: PushedCommit;
  let workspaceRoot: string;
  const secret = `s3cr3t-${crypto.randomBytes(8).toString('hex')}`;
  const keyName = `sandbox-test-key-${crypto.randomBytes(4).toString('hex')}.pem`;
  const planted: string[] = [];
  const made: string[] = [];

  beforeAll(async () => {
    dir = tempDir('sandbox');
    bare = path.join(dir, 'widget.git');
    const config = testConfig([{ name: 'acme/widget', cloneUrl: bare, steps: {} }]);
    s3 = (await awsFor(config)).s3;
    const { bucket, prefix } = parseS3Url(config.storage.artifacts);
    workspaceRoot = config.workspace as string;
    deps = {
      s3,
      artifactsBucket: bucket,
      artifactsPrefix: prefix,
      workspaceRoot,
      sandbox: createSandboxHost({ workspaceRoot }),
    };
    commit = await commitSample(bare, path.join(dir, 'work'), { message: 'hostile' });
    // What a worker holds: a secret in its environment, keys in its own directories.
    process.env.CONVEYOR_TEST_FAKE_SECRET = secret;
    for (const d of [path.join(process.cwd(), '.dev'), workspaceRoot, '/root']) {
      if (!fs.existsSync(d)) made.push(d);
      fs.mkdirSync(d, { recursive: true });
      const f = path.join(d, keyName);
      fs.writeFileSync(f, '-----BEGIN PRIVATE KEY-----\nnot really\n', { mode: 0o644 });
      planted.push(f);
    }
  });

  afterAll(() => {
    delete process.env.CONVEYOR_TEST_FAKE_SECRET;
    for (const f of planted) fs.rmSync(f, { force: true });
    for (const d of made) fs.rmSync(d, { recursive: true, force: true });
  });

  const input = (command: string, sandbox?: Partial<SandboxSpec>, timeoutSeconds = 60): RunStepInput => ({
    pipelineId: 'p',
    stageWorkflowId: `sandbox/${uid()}`,
    stage: 'test',
    step: 'unit',
    command,
    cloneUrl: bare,
    sha: commit.sha,
    env: { CONVEYOR_REPOSITORY: 'acme/widget', CONVEYOR_COMMIT: commit.sha },
    timeoutSeconds,
    sandbox: sandbox
      ? { ...DEFAULT_SANDBOX, ...sandbox, limits: { ...DEFAULT_SANDBOX.limits, ...sandbox.limits } }
      : undefined,
  });
  const run = (command: string, sandbox?: Partial<SandboxSpec>, timeoutSeconds?: number) =>
    createRunStep(deps)(input(command, sandbox, timeoutSeconds));
  /** The step's log without the `$ command` lines (they hold the probe's own words). */
  const log = async (key: string) => {
    const obj = await s3.send(new GetObjectCommand({ Bucket: deps.artifactsBucket, Key: key }));
    return (await obj.Body!.transformToString())
      .split('\n')
      .filter((l) => !l.startsWith('$ '))
      .join('\n');
  };
  const failure = async (p: Promise<unknown>): Promise<ApplicationFailure> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(err instanceof ApplicationFailure)) throw new Error(`expected an ApplicationFailure, got ${String(err)}`);
    return err;
  };

  it("shows no variable of the worker's: /proc/1/environ is empty, no process holds the secret", async () => {
    expect(process.env.CONVEYOR_TEST_FAKE_SECRET).toBe(secret);
    const r = await run(
      [
        'echo "pid1-bytes=$(wc -c < /proc/1/environ)"',
        'for f in /proc/[0-9]*/environ; do echo "== $f"; tr "\\0" "\\n" < "$f"; done',
        'echo "== env"; env',
      ].join('; '),
    );
    const text = await log(r.logKey);
    expect(text).toContain('pid1-bytes=0');
    expect(text).not.toContain(secret);
    expect(text).not.toContain('CONVEYOR_TEST_FAKE_SECRET');
    // The probe reads environments: its own shell's shows the variables it was given.
    expect(text).toContain(`CONVEYOR_COMMIT=${commit.sha}`);
    expect(text).toContain('CONVEYOR_WORKSPACE=/work/src');
    // Nothing of the worker's environment beyond what the step was given (and what sh sets itself).
    const names = new Set(
      text
        .split('\n')
        .map((l) => /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(l)?.[1])
        .filter((n): n is string => !!n),
    );
    const allowed = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'SHELL', 'USER', 'LOGNAME', 'PWD', 'OLDPWD', 'SHLVL', '_'];
    for (const n of names) if (!n.startsWith('CONVEYOR_') && !allowed.includes(n)) throw new Error(`leaked ${n}`);
  });

  it("cannot see /root, the project's .dev/, the workspace root or a key placed there", async () => {
    const r = await run(
      [
        `find / -path /proc -prune -o -name '${keyName}' -print 2>/dev/null | sed 's/^/found: /'`,
        'ls /root 2>&1',
        `ls ${path.join(process.cwd(), '.dev')} 2>&1`,
        `ls ${workspaceRoot} 2>&1`,
        `cat ${planted[0]} 2>&1`,
        'ls /work',
        'echo done',
      ].join('; '),
    );
    const text = await log(r.logKey);
    expect(text).toContain('done');
    expect(text).not.toContain('found: ');
    expect(text).not.toContain('not really');
    expect(text).toMatch(/ls: cannot access '\/root': No such file or directory/);
    expect(text).toContain(`ls: cannot access '${path.join(process.cwd(), '.dev')}': No such file or directory`);
    expect(text).toContain(`ls: cannot access '${workspaceRoot}': No such file or directory`);
    // /work holds this step's checkout and output only, not the other workspaces beside it.
    expect(text).toMatch(/\nout\nsrc\ndone/);
  });

  it('control: unsandboxed (sandbox.mode none) the same step finds the key', async () => {
    const r = await run(`cat ${planted[0]}`, { mode: 'none' });
    expect(await log(r.logKey)).toContain('not really');
  });

  it("cannot connect to the host's loopback or its other addresses, with network off or on", async () => {
    const hostAddress = Object.values(os.networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    expect(hostAddress).toBeDefined();
    const accepted: string[] = [];
    const listen = (host: string) =>
      new Promise<net.Server>((resolve) => {
        const server = net.createServer((s) => {
          s.on('error', () => undefined); // the probe hangs up at once
          accepted.push(host);
          s.end('hello\n');
        });
        server.listen(0, host, () => resolve(server));
      });
    const loopback = await listen('127.0.0.1');
    const everywhere = await listen('0.0.0.0');
    const port = (s: net.Server) => (s.address() as net.AddressInfo).port;
    const probe = (targets: string[]) =>
      targets
        .map(
          (t) =>
            `if timeout 5 bash -c 'exec 3<>/dev/tcp/${t}' 2>/dev/null; then echo "REACHED ${t}"; else echo "refused ${t}"; fi`,
        )
        .join('; ');
    const targets = [
      `127.0.0.1/${port(loopback)}`,
      `10.0.2.2/${port(loopback)}`,
      `${hostAddress}/${port(everywhere)}`,
      `127.0.0.1/${port(everywhere)}`,
    ];
    try {
      const off = await log((await run(`${probe(targets)}; ip -4 route 2>&1; echo end`)).logKey);
      const on = await log(
        (
          await run(`${probe(targets)}; ip -4 route; cat /etc/resolv.conf; getent hosts deb.debian.org; echo end`, {
            network: ['unit'],
          })
        ).logKey,
      );
      for (const text of [off, on]) {
        for (const t of targets) expect(text).toContain(`refused ${t}`);
        expect(text).not.toContain('REACHED');
      }
      // Off: no route anywhere. On: a default route through slirp4netns and its DNS, the host's
      // own address unreachable by a route the step cannot remove.
      expect(off).not.toContain('default via');
      expect(on).toContain('default via 10.0.2.2 dev tap0');
      expect(on).toContain(`unreachable ${hostAddress}`);
      expect(on).toContain('nameserver 10.0.2.3');
      expect(accepted).toEqual([]);
      // Control: unsandboxed, the same probe reaches both servers.
      const open = await log((await run(probe(targets.slice(0, 1).concat(targets[2])), { mode: 'none' })).logKey);
      expect(open).toContain(`REACHED ${targets[0]}`);
      expect(open).toContain(`REACHED ${targets[2]}`);
    } finally {
      loopback.close();
      everywhere.close();
    }
  });

  it('cannot write outside its checkout, $CONVEYOR_OUT, /tmp and $HOME', async () => {
    const r = await run(
      [
        'for p in /usr/x /etc/x /x /work/x /opt/x /proc/x /bin/x; do touch "$p" 2>&1 || true; done',
        'touch "$CONVEYOR_WORKSPACE/ok-src" "$CONVEYOR_OUT/ok-out" /tmp/ok-tmp "$HOME/ok-home" && echo writable-ok',
      ].join('; '),
    );
    const text = await log(r.logKey);
    for (const p of ['/usr/x', '/etc/x', '/opt/x', '/bin/x']) {
      expect(text).toContain(`touch: cannot touch '${p}': Read-only file system`);
    }
    // The sandbox's own root (a tmpfs bwrap built) is read-only too; /proc refuses new files.
    expect(text).toContain("touch: cannot touch '/x': Read-only file system");
    expect(text).toContain("touch: cannot touch '/work/x': Read-only file system");
    expect(text).toMatch(/touch: cannot touch '\/proc\/x': (No such file or directory|Permission denied)/);
    expect(text).toContain('writable-ok');
  });

  it('runs as an unprivileged uid, also as the host sees it; its files in out are not root-owned', async () => {
    const marker = `400.${crypto.randomInt(1e6, 1e7)}`;
    await withStepWorkspace(
      deps,
      { stageWorkflowId: `sandbox/${uid()}`, step: 'unit', cloneUrl: bare, sha: commit.sha },
      async (ws) => {
        const running = ws.run(
          `id -u > "$CONVEYOR_OUT/uid"; touch "$CONVEYOR_OUT/made-here"; mkdir "$CONVEYOR_OUT/dir"; sleep ${marker} & wait`,
          {},
          60,
        );
        const pid = await waitFor(() => liveWith(marker)[0]);
        const uids = /^Uid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1].split(/\s+/);
        const gids = /^Gid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1].split(/\s+/);
        process.kill(pid, 'SIGTERM');
        await running.catch(() => undefined);
        // Real, effective, saved and filesystem ids on the host: all the sandbox uid.
        expect(uids).toEqual(['65534', '65534', '65534', '65534']);
        expect(gids).toEqual(['65534', '65534', '65534', '65534']);
        expect(fs.readFileSync(path.join(ws.out, 'uid'), 'utf8').trim()).toBe('65534');
        for (const f of ['uid', 'made-here', 'dir']) {
          const st = fs.statSync(path.join(ws.out, f));
          expect([st.uid, st.gid]).toEqual([65534, 65534]);
        }
        // The builder reads them back.
        expect(fs.readFileSync(path.join(ws.out, 'uid'), 'utf8')).toBe('65534\n');
      },
    );
  });

  it('leaves no process behind: setsid, nohup and double-forked children die with the step', async () => {
    const marker = `500.${crypto.randomInt(1e6, 1e7)}`;
    // Their output goes elsewhere: unsandboxed, a child holding the step's stdout would keep the
    // step running (the control below would then never end).
    const q = '>/dev/null 2>&1';
    const cmd = `setsid sleep ${marker} ${q} & (setsid sleep ${marker} ${q} &); nohup sleep ${marker} ${q} & echo started`;
    await run(cmd);
    expect(liveWith(marker)).toEqual([]);
    // Control: unsandboxed, the setsid children outlive the step (killed here by their pids).
    await run(cmd, { mode: 'none' });
    const left = liveWith(marker);
    expect(left.length).toBeGreaterThanOrEqual(2);
    for (const pid of left) process.kill(pid, 'SIGKILL');
  });

  it('kills everything the step started when the activity is cancelled', async () => {
    const marker = `600.${crypto.randomInt(1e6, 1e7)}`;
    const env = new MockActivityEnvironment(undefined, { logger: silent });
    const running = env
      .run(createRunStep(deps), input(`setsid sleep ${marker} & (sleep ${marker} &); sleep ${marker}`))
      .then(
        () => 'finished',
        (e: unknown) => e,
      );
    await waitFor(() => liveWith(marker).length >= 3 || undefined);
    env.cancel();
    expect(await running).toBeInstanceOf(CancelledFailure);
    expect(liveWith(marker)).toEqual([]);
    expect(mountsUnder(workspaceRoot)).toEqual([]);
  });

  const limitFailure = async (command: string, limits: Partial<SandboxSpec['limits']>, timeoutSeconds?: number) => {
    const f = await failure(run(command, { limits: { ...DEFAULT_SANDBOX.limits, ...limits } }, timeoutSeconds));
    expect(f.type).toBe('CommandFailed');
    const details = f.details?.[0] as CommandFailureDetails;
    return { message: f.message, tail: details.tail, log: await log(details.logKey) };
  };

  it('fails a step over its memory limit, naming the limit (and passes it with a larger one)', async () => {
    const hog = 'head -c 200M /dev/zero | tail > /dev/null';
    const f = await limitFailure(hog, { memoryMb: 64 });
    expect(f.message).toContain('step unit exceeded the memory limit of 64 MB (sandbox.limits.memoryMb)');
    expect(f.tail).toContain('conveyor: step unit exceeded the memory limit of 64 MB (sandbox.limits.memoryMb)');
    expect(f.log).toContain('exceeded the memory limit of 64 MB');
    const ok: StepResult = await run(hog, { limits: { ...DEFAULT_SANDBOX.limits, memoryMb: 512 } });
    expect(ok.exitCode).toBe(0);
  });

  it('contains a fork bomb at the process limit and names it; nothing of it is left', async () => {
    const f = await limitFailure('bomb() { bomb | bomb & }; bomb; sleep 2; echo survived', { pids: 32 }, 20);
    expect(f.message).toContain('step unit exceeded the process limit of 32 processes (sandbox.limits.pids)');
    expect(liveWith('bomb')).toEqual([]);
  });

  it('fails a step that writes more than its disk limit into the workspace, naming the limit', async () => {
    const f = await limitFailure('dd if=/dev/zero of=big bs=1M count=100 2>&1; echo "dd exit $?"', { diskMb: 64 });
    expect(f.message).toContain('step unit exceeded the disk limit of 64 MB in its workspace (sandbox.limits.diskMb)');
    expect(f.log).toContain('No space left on device');
  });

  it('fails a step over its CPU time, naming the limit', async () => {
    const f = await limitFailure('while :; do :; done', { cpuSeconds: 2 }, 60);
    expect(f.message).toContain('step unit exceeded the CPU time limit of 2 s (sandbox.limits.cpuSeconds)');
  });

  it('where no loop volume can be made, a watcher stops a step over its disk limit', async () => {
    const watched: RunStepDeps = { ...deps, sandbox: createSandboxHost({ workspaceRoot, disk: 'watch' }) };
    const f = await failure(
      createRunStep(watched)(
        input('for i in 1 2 3 4 5 6; do head -c 30M /dev/zero > part$i; sleep 0.5; done; echo wrote-all', {
          limits: { ...DEFAULT_SANDBOX.limits, diskMb: 64 },
        }),
      ),
    );
    expect(f.message).toContain('exceeded the disk limit of 64 MB in its workspace (sandbox.limits.diskMb)');
    expect(f.message).not.toContain('wrote-all');
  });

  it('refuses to run repository code where namespaces cannot be made, saying why and how to opt out', async () => {
    const fake = path.join(dir, 'no-namespaces-bwrap');
    fs.writeFileSync(
      fake,
      '#!/bin/sh\necho "bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces." >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const broken: RunStepDeps = { ...deps, sandbox: createSandboxHost({ workspaceRoot, bwrap: fake }) };
    const probe = await broken.sandbox!.probe();
    expect(probe.ok).toBe(false);
    const before = fs.readdirSync(workspaceRoot).length;
    const f = await failure(createRunStep(broken)(input('echo ran')));
    expect(f.type).toBe('SandboxUnavailable');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('refusing to run the unit step of acme/widget');
    expect(f.message).toContain('No permissions to creating new namespace');
    expect(f.message).toContain('user namespaces are not available');
    expect(f.message).toContain('`sandbox: { mode: none }`');
    // Refused before anything: no workspace, no checkout.
    expect(fs.readdirSync(workspaceRoot).length).toBe(before);

    // Opted out: the step runs, unsandboxed, as the worker's user, and its log says so.
    const r = await createRunStep(broken)(input('echo "ran as $(id -u)"', { mode: 'none' }));
    const text = await log(r.logKey);
    expect(text).toContain(`ran as ${process.getuid?.()}`);
    expect(text).toContain('sandbox: NONE');
  });
});

const silent = silentLogger;

async function waitFor<T>(get: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const v = get();
    if (v !== undefined && v !== false) return v;
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Live (not zombie) processes on the host whose argv holds `marker` as a word. */
function liveWith(marker: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || name === String(process.pid)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (!argv.includes(marker) && !(marker === 'bomb' && argv.some((a) => a.includes('bomb()')))) continue;
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] !== 'Z') out.push(Number(name));
    } catch {
      continue;
    }
  }
  return out;
}

function mountsUnder(root: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m && m.startsWith(root));
}
