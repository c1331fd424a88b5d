// The e2e step's way to the hosts, below the workflow: runE2e serves the host-exec relay while the
// step runs, the step's CONVEYOR_HOST_EXEC client talks to it, and each request is forwarded (here
// straight to the validator's check and the real execOnHost against a local host, where the
// verify stage would take it as its hostExec Update; test/workflows/host-exec.test.ts and
// test/e2e/staging.test.ts cover that part). The step runs in the step sandbox (bubblewrap, an
// unprivileged uid, no network, /usr and /etc read-only): the client works there, through the
// directory bound at /run/conveyor, while the hosts directory is out of its reach.
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { createFleetActivities, type FleetActivities, type Host } from '../../activities/fleet';
import { createRunE2e, HOST_EXEC_MOUNT, writeHostExecFiles } from '../../activities/fleet/e2e';
import { startHostExecRelay } from '../../activities/fleet/host-exec-relay';
import { runProcess } from '../../activities/exec/process';
import { HOST_EXEC_REFUSED, hostExecRefusal, type HostExecRequest } from '../../common/host-exec';
import { DEFAULT_SANDBOX } from '../../common/sandbox';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { commitSample } from '../../cli/demo/sample-repo';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { makeLocalHost } from '../helpers/hosts';
import { awsFor, tempDir, testConfig, testEnv, uid } from '../helpers/stack';

describe('fleet: e2e steps reach hosts through the host-exec relay only', () => {
  let config: ConveyorConfig;
  let s3: S3Client;
  let bucket: string;
  let hostsDir: string;
  let host: Host;
  let fleet: FleetActivities;
  let cloneUrl: string;
  let sha: string;
  const forwarded: HostExecRequest[] = [];

  beforeAll(async () => {
    const dir = tempDir('fleet-host-exec');
    hostsDir = path.join(dir, 'hosts');
    const root = await makeLocalHost(hostsDir, 'hx-1', 'deb');
    fs.writeFileSync(path.join(root, 'etc/motd'), 'hello from hx-1\n');
    host = { instanceId: 'i-0123456789abcdef1', name: 'hx-1', distro: 'deb', executor: 'local', root };
    config = testConfig([], {}, { deb: { format: 'deb', codename: 'bookworm', arch: 'amd64' } });
    const aws = await awsFor(config);
    s3 = aws.s3;
    bucket = parseS3Url(config.storage.artifacts).bucket;
    fleet = createFleetActivities({
      ec2: aws.ec2,
      ssm: aws.ssm,
      s3,
      artifactsBucket: bucket,
      artifactsPrefix: '',
      hostsDir,
    });
    cloneUrl = path.join(dir, 'sample.git');
    sha = (await commitSample(cloneUrl, path.join(dir, 'work'), { branch: 'main', message: 'e2e' })).sha;
  }, 300_000);

  /** runE2e as a builder runs it, with the verify stage's decision in place of the Update. */
  const runE2e = (command: string, sandbox?: { mode: 'none' }) =>
    createRunE2e({
      s3,
      artifactsBucket: bucket,
      artifactsPrefix: '',
      workspaceRoot: path.join(testEnv().dir, `e2e-work-${uid()}`),
      forwardHostExec: async (_stageWorkflowId, req) => {
        forwarded.push(req);
        const why = hostExecRefusal(req, [host.name]);
        if (why) {
          throw new WorkflowUpdateFailedError(
            'Workflow Update failed',
            ApplicationFailure.create({ type: HOST_EXEC_REFUSED, message: why, nonRetryable: true }),
          );
        }
        return fleet.execOnHost({
          host,
          argv: req.argv,
          stdin: req.stdin,
          env: { CONVEYOR_HOST: req.host },
          timeoutSeconds: 60,
        });
      },
    })({
      pipelineId: 'pipeline/acme/widget/main/x',
      stageWorkflowId: `pipeline/acme/widget/main/${sha}/verify-${uid()}`,
      stage: 'verify',
      step: 'e2e',
      command,
      cloneUrl,
      sha,
      env: {},
      timeoutSeconds: 120,
      hosts: [host],
      ...(sandbox ? { sandbox: { ...DEFAULT_SANDBOX, ...sandbox } } : {}),
    });

  const logOf = async (key: string) =>
    (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();

  it('runs commands on the host from inside a sandbox; exit codes, stdin, stdout and stderr pass through', async () => {
    const r = await runE2e(
      [
        'set -u',
        'echo "client=$CONVEYOR_HOST_EXEC uid=$(id -u)"',
        '"$CONVEYOR_HOST_EXEC" hx-1 cat /etc/motd',
        '"$CONVEYOR_HOST_EXEC" hx-1 sh -c "echo to-stderr >&2; exit 7"; echo "exit=$?"',
        'printf "piped %s" "through stdin" | "$CONVEYOR_HOST_EXEC" hx-1 cat; echo',
        '"$CONVEYOR_HOST_EXEC" hx-1 sh -c "echo host=\\$CONVEYOR_HOST uid=\\$(id -u)" 2>/dev/null',
        'echo unread | "$CONVEYOR_HOST_EXEC" -n hx-1 sh -c "echo stdin=[\\$(cat)]"',
      ].join('\n'),
    );
    const log = await logOf(r.logKey);
    expect(log).toContain(`client=${HOST_EXEC_MOUNT}/host-exec uid=65534`);
    expect(log).toContain('hello from hx-1');
    expect(log).toMatch(/to-stderr\nexit=7/);
    expect(log).toContain('piped through stdin');
    expect(log).toContain('host=hx-1 uid=0');
    expect(log).toContain('stdin=[]');
    expect(log).toMatch(/conveyor: host-exec: 5 request\(s\) relayed/);
  });

  it('a host that is not of this run is refused with the reason, exit 2', async () => {
    const r = await runE2e('"$CONVEYOR_HOST_EXEC" prod-db-1 cat /etc/shadow; echo "exit=$?"');
    const log = await logOf(r.logKey);
    expect(log).toContain(
      'conveyor-host-exec: refused: host "prod-db-1" is not a staging host of this run (its hosts: hx-1)\nexit=2',
    );
  });

  it('the sandboxed step cannot reach the hosts directory; the directory bound in holds only the client', async () => {
    const r = await runE2e(
      [
        `ls ${hostsDir} && echo hosts-dir=reachable || echo hosts-dir=unreachable`,
        `ls -a ${HOST_EXEC_MOUNT}`,
        `echo x > ${HOST_EXEC_MOUNT}/host-exec.js && echo client=writable || echo client=read-only`,
        'env | sort',
      ].join('\n'),
    );
    const log = await logOf(r.logKey);
    expect(log).toMatch(/^hosts-dir=unreachable$/m);
    expect(log).not.toMatch(/^hosts-dir=reachable$/m);
    expect(log).toMatch(/^client=read-only$/m);
    // The directory holds the client, its wrapper and the socket: nothing of the fleet.
    expect(log).toMatch(/^\.\n\.\.\nhost-exec\nhost-exec\.js\nhost-exec\.sock\n/m);
    const env = log.slice(log.lastIndexOf('client=read-only\n'));
    expect(env).not.toContain(hostsDir);
    expect(env).toMatch(/^CONVEYOR_HOSTS=hx-1$/m);
    expect(env).toMatch(new RegExp(`^CONVEYOR_HOST_EXEC=${HOST_EXEC_MOUNT}/host-exec$`, 'm'));
    expect(env).not.toMatch(/SSH|AWS_|GITHUB|TOKEN/);
  });

  it('with `sandbox: none` the step is told the real paths and still gets through', async () => {
    const r = await runE2e('echo "client=$CONVEYOR_HOST_EXEC"; "$CONVEYOR_HOST_EXEC" hx-1 cat /etc/motd', {
      mode: 'none',
    });
    const log = await logOf(r.logKey);
    expect(log).toMatch(/^client=\/.*\/host-exec\/host-exec$/m);
    expect(log).not.toContain(`client=${HOST_EXEC_MOUNT}`);
    expect(log).toContain('hello from hx-1');
  });

  /** Runs the client from `files` in a bwrap as uid 65534 (as a step would be), against a relay
   * that answers every request itself. */
  async function clientInSandbox(files: ReturnType<typeof writeHostExecFiles>) {
    const relay = await startHostExecRelay({
      socketPath: files.socket,
      forward: (req) =>
        Promise.resolve({
          exitCode: 0,
          stdout: Buffer.from(`ran ${req.argv.join(' ')}\n`).toString('base64'),
          stderr: '',
        }),
    });
    try {
      const binds = files.binds.flatMap((b) => [b.readOnly ? '--ro-bind' : '--bind', b.src, b.dest]);
      const r = await runProcess(
        '/usr/bin/bwrap',
        [
          '--unshare-all',
          '--die-with-parent',
          '--uid',
          '65534',
          '--ro-bind',
          '/usr',
          '/usr',
          '--symlink',
          'usr/bin',
          '/bin',
          '--symlink',
          'usr/lib',
          '/lib',
          '--symlink',
          'usr/lib64',
          '/lib64',
          '--proc',
          '/proc',
          '--dev',
          '/dev',
          ...binds,
          '--setenv',
          'PATH',
          '/usr/bin',
          '/bin/sh',
          '-c',
          `head -n3 ${HOST_EXEC_MOUNT}/host-exec | tail -n1; ${HOST_EXEC_MOUNT}/host-exec -n hx-1 uname -a`,
        ],
        { env: {} },
      );
      expect(r.output).toBe(`exec '${HOST_EXEC_MOUNT}/node' "\${0%/*}/host-exec.js" "$@"\nran uname -a\n`);
      expect(r.exitCode).toBe(0);
    } finally {
      await relay.close();
    }
  }

  it('sandboxed, the files name /run/conveyor, and a node binary outside /usr is bound in beside them', async () => {
    const dir = path.join(tempDir('hx-files'), 'host-exec');
    // A node "outside /usr" that anyone may run: a link to a copy, which bwrap resolves when it binds it.
    const node = path.join(path.dirname(dir), 'node');
    fs.copyFileSync(process.execPath, `${node}-copy`);
    fs.chmodSync(`${node}-copy`, 0o755);
    fs.symlinkSync(`${node}-copy`, node);
    const files = writeHostExecFiles(dir, node, true);
    expect(files.env).toEqual({
      CONVEYOR_HOST_EXEC: `${HOST_EXEC_MOUNT}/host-exec`,
      CONVEYOR_HOST_EXEC_SOCKET: `${HOST_EXEC_MOUNT}/host-exec.sock`,
    });
    expect(files.binds).toEqual([
      { src: dir, dest: HOST_EXEC_MOUNT, readOnly: true },
      { src: node, dest: `${HOST_EXEC_MOUNT}/node`, readOnly: true },
    ]);
    await clientInSandbox(files);
  });

  it("a node binary the sandbox uid cannot reach (a private home's) is copied beside the client", async () => {
    const base = tempDir('hx-private');
    const home = path.join(base, 'home');
    fs.mkdirSync(path.join(home, 'bin'), { recursive: true });
    fs.chmodSync(home, 0o700);
    const node = path.join(home, 'bin', 'node');
    fs.copyFileSync(process.execPath, node);
    fs.chmodSync(node, 0o755);
    const dir = path.join(base, 'host-exec');
    const files = writeHostExecFiles(dir, node, true);
    // Bound, it would be refused by bwrap as uid 65534: "Can't find source path …: Permission denied".
    expect(files.binds).toEqual([{ src: dir, dest: HOST_EXEC_MOUNT, readOnly: true }]);
    expect(fs.statSync(path.join(dir, 'node')).size).toBe(fs.statSync(node).size);
    await clientInSandbox(files);
  });
});
