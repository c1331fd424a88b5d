// The ssh executor against a real OpenSSH server on loopback, started by this test with its own
// host key, authorized key and config. Its "machine" is a Debian root: sshd's ForceCommand enters
// it (unshare + chroot, as a real host's login would land in its own system), so apt-get over SSH
// installs the package from the published staging repository into that root and dpkg reads the
// version back. Host keys are checked against known_hosts: unknown and changed keys are refused.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { SSMClient } from '@aws-sdk/client-ssm';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createFleetActivities, type FleetActivities, type Host, type SshSettings } from '../../activities/fleet';
import { runChecked } from '../../activities/exec/process';
import { freePort, spawnService, waitFor, type Service } from '../../cli/local-stack/services';
import { parseS3Url } from '../../config/conveyor';
import { makeLocalHost, publishStaging, registerHosts, type StagingRepo } from '../helpers/hosts';
import { awsFor, tempDir, testConfig, testEnv, uid } from '../helpers/stack';

const quiet = new DefaultLogger('ERROR');

function findSshd(): string | undefined {
  return ['/usr/sbin/sshd', '/usr/local/sbin/sshd'].find((f) => fs.existsSync(f));
}

describe('fleet: the ssh executor against a real sshd', () => {
  let dir: string;
  let sshd: Service;
  let port: number;
  let root: string;
  let host: Host;
  let repo: StagingRepo;
  let s3: S3Client;
  let artifactsBucket: string;
  let knownHosts: string;
  let settings: SshSettings;
  let acts: FleetActivities;
  let ssm: SSMClient;
  let ec2: Awaited<ReturnType<typeof awsFor>>['ec2'];

  const withSettings = (ssh: SshSettings) =>
    createFleetActivities({ ec2, ssm, s3, artifactsBucket, artifactsPrefix: '', ssh });

  beforeAll(async () => {
    const sshdPath = findSshd();
    if (!sshdPath) {
      throw new Error('sshd not found: the ssh executor test needs openssh-server (scripts/bootstrap.js installs it)');
    }
    dir = tempDir('fleet-ssh');
    const config = testConfig([], {}, { deb: { format: 'deb', codename: 'bookworm', arch: 'amd64' } });
    const aws = await awsFor(config);
    s3 = aws.s3;
    ec2 = aws.ec2;
    ssm = new SSMClient({
      region: 'us-east-1',
      endpoint: testEnv().aws,
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
    [repo, root] = await Promise.all([
      publishStaging(config, s3, path.join(dir, 'packages'), 'widget', ['1.0.0-1', '1.0.0-2', '1.0.0-3']),
      makeLocalHost(path.join(dir, 'hosts'), 'ssh-1', 'deb'),
    ]);
    for (const k of ['host_key', 'client_key', 'other_host_key']) {
      await runChecked('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', k, '-f', path.join(dir, k)]);
    }
    fs.copyFileSync(path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys'));
    // The login lands in the host's own system, as on a real machine.
    const shell = path.join(dir, 'host-shell.sh');
    fs.writeFileSync(
      shell,
      `#!/bin/sh\nexec unshare --mount --pid --fork --kill-child --mount-proc='${root}/proc' chroot '${root}' /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n`,
      { mode: 0o755 },
    );
    port = await freePort();
    const conf = path.join(dir, 'sshd_config');
    fs.writeFileSync(
      conf,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${dir}/host_key`,
        `PidFile ${dir}/sshd.pid`,
        `AuthorizedKeysFile ${dir}/authorized_keys`,
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        `ForceCommand ${shell}`,
        '',
      ].join('\n'),
    );
    fs.mkdirSync('/run/sshd', { recursive: true }); // sshd's privilege separation directory
    sshd = spawnService('sshd', sshdPath, ['-D', '-e', '-f', conf], { logFile: path.join(dir, 'sshd.log') });
    await waitFor('sshd to answer', () => banner(port), { service: sshd, timeoutMs: 20_000 });

    const hostKey = fs.readFileSync(path.join(dir, 'host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
    knownHosts = path.join(dir, 'known_hosts');
    fs.writeFileSync(knownHosts, `# test\n[127.0.0.1]:${port} ${hostKey}\n`);
    settings = { keyFile: path.join(dir, 'client_key'), knownHostsFile: knownHosts, user: 'root' };
    acts = withSettings(settings);
    const distro = Object.keys(config.distros)[0];
    const role = `ssh-${uid()}`;
    await registerHosts(ec2, [
      { name: 'ssh-1', distro, executor: 'ssh', address: `127.0.0.1:${port}`, tags: { Role: role } },
    ]);
    [host] = await acts.discoverHosts({ tags: { Role: role }, distro });
  }, 600_000);

  afterAll(async () => {
    await sshd?.stop(5000);
  });

  it('runs a command on the host: exit code, tail, env as data, log in the artifacts bucket', async () => {
    expect(host).toMatchObject({ executor: 'ssh', address: `127.0.0.1:${port}` });
    const logKey = `logs/ssh-${uid()}/smoke.log`;
    const res = await acts.runOnHost({
      host,
      command: 'echo "host=$CONVEYOR_HOST note=$CONVEYOR_NOTE"; cat /etc/hostname; echo err >&2; exit 5',
      env: { CONVEYOR_HOST: host.name, CONVEYOR_NOTE: "it's $(touch /pwned)" },
      logKey,
    });
    expect(res.exitCode).toBe(5);
    // /etc/hostname of the host's own root: the command ran inside it.
    expect(res.tail).toContain("host=ssh-1 note=it's $(touch /pwned)\nssh-1\n");
    expect(res.tail).toContain('err');
    expect(fs.existsSync(path.join(root, 'pwned'))).toBe(false);
    const log = await s3.send(new GetObjectCommand({ Bucket: artifactsBucket, Key: logKey }));
    expect(await log.Body!.transformToString()).toContain('host=ssh-1');
  });

  it('execOnHost (host-exec): stdin, stdout and stderr apart, the exit code', async () => {
    const res = await acts.execOnHost({
      host,
      argv: ['sh', '-c', 'cat; echo "on $(cat /etc/hostname)"; echo oops >&2; exit 4'],
      stdin: Buffer.from("piped $(id) '\n").toString('base64'),
      env: { CONVEYOR_HOST: host.name },
      timeoutSeconds: 60,
    });
    expect(res.exitCode).toBe(4);
    expect(Buffer.from(res.stdout, 'base64').toString()).toBe("piped $(id) '\non ssh-1\n");
    expect(Buffer.from(res.stderr, 'base64').toString()).toBe('oops\n');
  });

  it('installs the package through apt-get over SSH and reads its version back', async () => {
    expect(await acts.hostVersion({ host, packageName: 'widget', format: 'deb' })).toEqual({ version: null });
    const upgrade = (version: string) => ({
      host,
      format: 'deb' as const,
      packageName: 'widget',
      version,
      repo: { ...repo.apt, keyUrl: repo.keyUrl },
      logKey: `logs/ssh-${uid()}/upgrade.log`,
    });
    const first = await acts.upgradeHost(upgrade('1.0.0-2'));
    expect(first).toMatchObject({ host: 'ssh-1', before: null, after: '1.0.0-2', changed: true });
    expect(fs.readFileSync(path.join(root, 'usr/share/widget/VERSION'), 'utf8')).toBe('1.0.0-2\n');
    const second = await acts.upgradeHost(upgrade('1.0.0-3'));
    expect(second).toMatchObject({ before: '1.0.0-2', after: '1.0.0-3' });
    expect(await acts.hostVersion({ host, packageName: 'widget', format: 'deb' })).toEqual({ version: '1.0.0-3' });
    const log = await s3.send(new GetObjectCommand({ Bucket: artifactsBucket, Key: second.logKey }));
    expect(await log.Body!.transformToString()).toMatch(/Unpacking widget \(1\.0\.0-3\) over \(1\.0\.0-2\)/);
  });

  it('refuses an unknown host key, a changed one, and accepts a hashed known_hosts entry', async () => {
    const run = (ssh: SshSettings) =>
      withSettings(ssh)
        .runOnHost({ host, command: 'true', env: {}, logKey: `logs/ssh-${uid()}/k.log` })
        .catch((e: unknown) => e as ApplicationFailure);

    const empty = path.join(dir, 'known_hosts.empty');
    fs.writeFileSync(empty, '');
    const unknown = (await run({ ...settings, knownHostsFile: empty })) as ApplicationFailure;
    expect(unknown).toBeInstanceOf(ApplicationFailure);
    expect(unknown.type).toBe('HostKeyRejected');
    expect(unknown.nonRetryable).toBe(true);
    expect(unknown.message).toMatch(
      /host key of \[127\.0\.0\.1\]:\d+ \(ssh-ed25519 SHA256:\S+\) is not in .*known_hosts\.empty/,
    );

    const other = fs.readFileSync(path.join(dir, 'other_host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
    const changedFile = path.join(dir, 'known_hosts.changed');
    fs.writeFileSync(changedFile, `[127.0.0.1]:${port} ${other}\n`);
    const changed = (await run({ ...settings, knownHostsFile: changedFile })) as ApplicationFailure;
    expect(changed.type).toBe('HostKeyRejected');
    expect(changed.message).toMatch(/has CHANGED/);

    const hashed = path.join(dir, 'known_hosts.hashed');
    fs.copyFileSync(knownHosts, hashed);
    await runChecked('ssh-keygen', ['-H', '-f', hashed]);
    expect(fs.readFileSync(hashed, 'utf8')).toMatch(/^\|1\|/m);
    expect(await run({ ...settings, knownHostsFile: hashed })).toMatchObject({ exitCode: 0 });

    const wrongKey = (await run({ ...settings, keyFile: path.join(dir, 'other_host_key') })) as ApplicationFailure;
    expect(wrongKey.type).toBe('BadConfig');
    expect(wrongKey.message).toMatch(/refused our SSH key/);
  });

  it('a timeout and a cancellation stop the remote process tree', async () => {
    const marker = `sleep 92${Math.floor(Math.random() * 9) + 1}`;
    const timedOut = await acts.runOnHost({
      host,
      command: `${marker}; echo never`,
      env: {},
      logKey: `logs/ssh-${uid()}/timeout.log`,
      timeoutSeconds: 1,
    });
    expect(timedOut).toMatchObject({ exitCode: 124, timedOut: true });
    await gone(marker);

    const env = new MockActivityEnvironment(undefined, { logger: quiet });
    const run = env.run(acts.runOnHost, {
      host,
      command: `(${marker}; echo late) & ${marker}; echo never`,
      env: {},
      logKey: `logs/ssh-${uid()}/cancel.log`,
    });
    await poll(async () => (await processes(marker)).length >= 2);
    env.cancel();
    await expect(run).rejects.toBeInstanceOf(CancelledFailure);
    await gone(marker);
  });
});

/** Resolves once the server sends its SSH banner. */
function banner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('data', (d) => {
      socket.destroy();
      resolve(d.toString().startsWith('SSH-2.0'));
    });
    socket.once('error', () => resolve(false));
  });
}

async function processes(marker: string): Promise<string[]> {
  const ps = await runChecked('ps', ['-eo', 'pid,args']);
  return ps.split('\n').filter((l) => l.includes(marker) && !l.includes('ps -eo') && !l.includes('sh -c'));
}

async function poll(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function gone(marker: string): Promise<void> {
  await poll(async () => (await processes(marker)).length === 0, 10_000);
}
