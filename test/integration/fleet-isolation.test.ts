// A local staging host is a sandbox: whatever runs in it as root (a package's scripts, an e2e
// command through host-exec) cannot reach this machine's files. The proof is the classic chroot
// escape, built here as a static binary (mkdir + chroot + `cd ..` × 64 + chroot("."), then read a
// marker file outside the host's root): under the plain `unshare … chroot` that local hosts used to
// run in it reads the marker (the control below); through the local executor it cannot. Also: the
// host sees its own processes only, its own hostname, no environment of the worker, and keeps no
// capability that reaches past its root.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SSMClient } from '@aws-sdk/client-ssm';
import { createFleetActivities, type FleetActivities, type Host } from '../../activities/fleet';
import { runProcess } from '../../activities/exec/process';
import { parseS3Url } from '../../config/conveyor';
import { makeLocalHost } from '../helpers/hosts';
import { awsFor, tempDir, testConfig, testEnv, uid } from '../helpers/stack';

const ESCAPE_C = `
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
/* escape MARKER: leave a chroot the classic way, then print MARKER's first bytes. */
int main(int argc, char **argv) {
  if (argc < 2) return 2;
  mkdir("conveyor-escape", 0755);
  if (chroot("conveyor-escape") != 0) perror("chroot conveyor-escape");
  for (int i = 0; i < 64; i++) if (chdir("..") != 0) break;
  if (chroot(".") != 0) perror("chroot .");
  FILE *f = fopen(argv[1], "r");
  if (!f) { perror(argv[1]); return 1; }
  char buf[256];
  size_t n = fread(buf, 1, sizeof buf, f);
  fwrite(buf, 1, n, stdout);
  return 0;
}
`;

/** CAP_SYS_ADMIN, CAP_MKNOD, CAP_DAC_READ_SEARCH, CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_PTRACE, CAP_SYS_MODULE. */
const FORBIDDEN_CAPS = [21, 27, 2, 12, 13, 19, 16];

describe('fleet: a local host keeps what runs in it inside its root', () => {
  let dir: string;
  let root: string;
  let host: Host;
  let acts: FleetActivities;
  let marker: string;
  let secret: string;

  beforeAll(async () => {
    dir = tempDir('fleet-isolation');
    const hostsDir = path.join(dir, 'hosts');
    root = await makeLocalHost(hostsDir, 'iso-1', 'deb');
    host = { instanceId: 'i-0123456789abcdef0', name: 'iso-1', distro: 'deb', executor: 'local', root };
    // The static binary is put into the host the way a package or an e2e step could put it there.
    const src = path.join(dir, 'escape.c');
    fs.writeFileSync(src, ESCAPE_C);
    try {
      execFileSync('gcc', ['-static', '-O2', '-o', path.join(root, 'usr/local/bin/escape'), src]);
    } catch (err) {
      throw new Error(
        `gcc -static failed (the escape test needs gcc and libc6-dev: apt-get install gcc libc6-dev): ${String(err)}`,
      );
    }
    secret = `conveyor-marker-${crypto.randomBytes(8).toString('hex')}`;
    marker = path.join(dir, 'marker');
    fs.writeFileSync(marker, `${secret}\n`);
    const config = testConfig([], {}, { deb: { format: 'deb', codename: 'bookworm', arch: 'amd64' } });
    const aws = await awsFor(config);
    acts = createFleetActivities({
      ec2: aws.ec2,
      ssm: new SSMClient({
        region: 'us-east-1',
        endpoint: testEnv().aws,
        credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      }),
      s3: aws.s3,
      artifactsBucket: parseS3Url(config.storage.artifacts).bucket,
      artifactsPrefix: '',
      hostsDir,
    });
  }, 300_000);

  const run = (command: string, env: Record<string, string> = {}) =>
    acts.runOnHost({ host, command, env, logKey: `logs/isolation-${uid()}/run.log` });

  it('control: the escape binary does leave a plain chroot (the way local hosts used to run)', async () => {
    const old = await runProcess('unshare', [
      '--mount',
      '--pid',
      '--fork',
      '--kill-child',
      `--mount-proc=${path.join(root, 'proc')}`,
      'chroot',
      root,
      '/bin/sh',
      '-c',
      'cd /tmp && /usr/local/bin/escape "$0"',
      marker,
    ]);
    expect(old.output).toContain(secret);
    expect(old.exitCode).toBe(0);
  });

  it('through the local executor, as root of the host, it cannot read a file outside the root', async () => {
    const r = await run('cd /tmp && /usr/local/bin/escape "$MARKER"; echo "exit=$?"', { MARKER: marker });
    expect(r.tail).not.toContain(secret);
    expect(r.tail).toContain(`${marker}: No such file or directory`);
    expect(r.tail).toContain('exit=1');
    // The same through host-exec, the e2e steps' way in.
    const hx = await acts.execOnHost({
      host,
      argv: ['sh', '-c', 'cd /tmp && exec /usr/local/bin/escape "$1"', 'escape', marker],
      env: {},
      timeoutSeconds: 60,
    });
    expect(hx.exitCode).toBe(1);
    expect(Buffer.from(hx.stdout, 'base64').toString()).not.toContain(secret);
    expect(Buffer.from(hx.stderr, 'base64').toString()).toContain('No such file or directory');
  });

  it('sees only its own processes, its own name, none of the worker environment, no dangerous capability', async () => {
    process.env.CONVEYOR_ISOLATION_CANARY = secret;
    try {
      const r = await run(
        [
          'echo "procs=$(ls -d /proc/[0-9]* | wc -l)"',
          'echo "name=$(uname -n)"',
          "echo \"env1=$(tr '\\0' ' ' < /proc/1/environ)\"",
          'echo "env=$(env | tr "\\n" " ")"',
          'grep CapEff /proc/self/status',
          'mknod /tmp/disk b 8 0 && echo mknod=yes || echo mknod=no',
          'ls /dev | tr "\\n" " "; echo',
          'ls "$OUTSIDE" && echo outside=yes || echo outside=no',
        ].join('\n'),
        { OUTSIDE: dir },
      );
      expect(r.exitCode).toBe(0);
      expect(r.tail).not.toContain(secret);
      expect(Number(/procs=(\d+)/.exec(r.tail)?.[1])).toBeLessThan(10);
      expect(r.tail).toContain('name=iso-1');
      expect(r.tail).toContain('mknod=no');
      expect(r.tail).toContain('outside=no');
      expect(r.tail).not.toMatch(/\bsd[a-z]\b|\bnvme|\bvd[a-z]\b/);
      const eff = BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(r.tail)?.[1] ?? 'ffffffffff'}`);
      for (const bit of FORBIDDEN_CAPS) expect((eff >> BigInt(bit)) & 1n).toBe(0n);
    } finally {
      delete process.env.CONVEYOR_ISOLATION_CANARY;
    }
  });
});
