// A hostile repository through the real webhook and workers. Its steps try what an attacker with
// push access would: read every process's environment (and bwrap's own PID 1), search the builder's
// directories for private keys, connect to the Temporal, S3 and API ports, write outside the
// workspace, leave a `setsid` process behind, and fork, allocate and write beyond the limits.
// Asserted on what the step logs show and on the machine afterwards. Secrets planted in this
// process's environment (the workers run in it) stand for the ones a careless deployment would
// give a builder: the sandbox must keep them out of reach even then.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { runProcess } from '../../activities/exec/process';
import { createApiServer, listen } from '../../api/server';
import { commitSample } from '../../cli/demo/sample-repo';
import { ROOT } from '../../cli/local-stack/tools';
import { pushPayload, sendWebhook } from '../../cli/webhook-client';
import type { PipelineStatus } from '../../common/types';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { awsFor, clientFor, startWorkers, tempDir, testConfig, testEnv, uid, waitForStatus } from '../helpers/stack';

const SECRET = `hook-${crypto.randomBytes(12).toString('hex')}`;
const CANARIES = {
  GITHUB_TOKEN: `ghp_canary${crypto.randomBytes(12).toString('hex')}`,
  CONVEYOR_HOSTILE_TOKEN: `ghp_canary${crypto.randomBytes(12).toString('hex')}`,
  GITHUB_WEBHOOK_SECRET: SECRET,
  AWS_SECRET_ACCESS_KEY: `aws-canary-${crypto.randomBytes(12).toString('hex')}`,
};
const MARKER = `conveyor-hostile-${uid()}`;
/** `sleep` takes a fraction: a number no other process on the machine sleeps for. */
const BOMB_SLEEP = `120.${crypto.randomInt(100000, 999999)}`;

/** The hostile step: MODE picks the attack. Everything it finds is printed for the log. */
function evilScript(o: { ports: number[]; keyPaths: string[]; writePaths: string[]; searchDirs: string[] }): string {
  return `#!/bin/sh
mode=$(cat MODE)
echo "uid=$(id -u) gid=$(id -g) mode=$mode"
case "$mode" in
probe)
  for f in /proc/[0-9]*/environ /proc/1/environ /proc/self/environ; do
    tr '\\0' '\\n' < "$f" 2>/dev/null | sed "s|^|ENV $f |"
  done
  for k in ${o.keyPaths.join(' ')} /etc/ssh/ssh_host_rsa_key /etc/ssh/ssh_host_ed25519_key /root/.ssh/id_rsa /root/.ssh/id_ed25519; do
    cat "$k" >/dev/null 2>&1 && echo "READ $k"
  done
  for d in / ${o.searchDirs.join(' ')}; do
    timeout 20 grep -rlsI -e "BEGIN [A-Z ]*PRIVATE KEY-----" "$d" --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr --exclude-dir=dev 2>/dev/null | grep -v "^$CONVEYOR_WORKSPACE" | sed 's/^/KEYFILE /'
  done
  for p in ${o.ports.join(' ')}; do
    timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" 2>/dev/null && echo "REACHED $p"
  done
  for w in ${o.writePaths.join(' ')}; do
    (echo owned > "$w") 2>/dev/null && echo "WROTE $w"
  done
  setsid bash -c 'exec -a ${MARKER} sleep 600' </dev/null >/dev/null 2>&1 &
  sleep 1
  echo "PROBE DONE"
  ;;
forkbomb)
  i=0; while [ $i -lt 3000 ]; do sleep ${BOMB_SLEEP} & i=$((i+1)); done; wait
  ;;
memory)
  python3 -c "b = bytearray(1536 * 1024 * 1024); print(len(b))"
  ;;
disk)
  dd if=/dev/zero of=big.bin bs=1M count=1024 2>&1
  ;;
esac
`;
}

describe('a hostile repository', () => {
  let config: ConveyorConfig;
  let client: Client;
  let s3: S3Client;
  let server: http.Server;
  let apiUrl: string;
  let workers: { stop(): Promise<void> };
  let bare: string;
  let goodBare: string;
  let work: string;
  let outside: string;
  const saved: Record<string, string | undefined> = {};

  beforeAll(async () => {
    const dir = tempDir('hostile');
    bare = path.join(dir, 'evil.git');
    goodBare = path.join(dir, 'good.git');
    work = path.join(dir, 'work');
    outside = path.join(dir, 'outside');
    fs.mkdirSync(outside);
    for (const [k, v] of Object.entries(CANARIES)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    config = testConfig(
      [
        {
          name: 'evil/repo',
          cloneUrl: bare,
          steps: { unit: 'sh ./evil.sh' },
          more: { sandbox: { limits: { memoryMb: 256, pids: 64, diskMb: 64 } } },
        },
        // A well-behaved project on the same workers, after the attacks.
        {
          name: 'good/widget',
          cloneUrl: goodBare,
          steps: { unit: 'make test', package: 'make package' },
          more: { packages: ['widget'] },
        },
      ],
      { github: { webhookSecretEnv: 'GITHUB_WEBHOOK_SECRET', tokenEnv: 'CONVEYOR_HOSTILE_TOKEN' } },
    );
    s3 = (await awsFor(config)).s3;
    client = await clientFor(config);
    workers = await startWorkers(config);
    server = createApiServer({ config, client, logger: pino({ level: 'silent' }), secret: SECRET });
    apiUrl = `http://127.0.0.1:${await listen(server, 0)}`;
  });

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    await workers?.stop();
    await client?.connection.close();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await runProcess('pkill', ['-KILL', '-f', MARKER]);
  });

  async function push(mode: string): Promise<string> {
    const env = testEnv();
    const ports = [
      Number(config.temporal.address.split(':').pop()),
      Number(new URL(env.aws).port),
      Number(new URL(apiUrl).port),
      7233,
      8233,
      5000,
      3000,
    ];
    const script = evilScript({
      ports,
      keyPaths: [env.signingKey, path.join(ROOT, '.dev', 'signing-key.asc')],
      writePaths: [
        '/usr/owned',
        '/etc/owned',
        '/owned',
        path.join(outside, 'owned'),
        path.join(ROOT, 'owned'),
        path.join(env.dir, 'owned'),
      ],
      searchDirs: [ROOT, env.dir, path.dirname(env.signingKey), '/root', '/tmp', '/var', '/etc', '/home', '/opt'],
    });
    const commit = await commitSample(bare, work, {
      message: `hostile ${mode}`,
      mutate: (d) => {
        fs.writeFileSync(path.join(d, 'evil.sh'), script);
        fs.writeFileSync(path.join(d, 'MODE'), `${mode}\n`);
      },
    });
    const res = await sendWebhook(
      apiUrl,
      SECRET,
      'push',
      pushPayload({ repository: 'evil/repo', branch: 'main', sha: commit.sha, before: commit.before }),
    );
    expect(res.status).toBe(202);
    return res.body.workflowId as string;
  }

  async function log(status: PipelineStatus): Promise<string> {
    const keys = status.stages.flatMap((s) => s.logKeys);
    const { bucket } = parseS3Url(config.storage.artifacts);
    const texts = await Promise.all(
      keys.map(async (key) => {
        const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return (await r.Body?.transformToString()) ?? '';
      }),
    );
    return texts.join('\n');
  }

  it('finds no secret, no key and no port, writes nothing outside and leaves nothing running', async () => {
    const id = await push('probe');
    const status = await waitForStatus(client, id, 'succeeded', 180_000);
    const text = await log(status);
    expect(text).toContain('PROBE DONE');
    expect(text).not.toMatch(/^uid=0 /m);
    for (const [name, value] of Object.entries(CANARIES)) {
      expect({ name, found: text.includes(value) }).toEqual({ name, found: false });
    }
    expect(text.split('\n').filter((l) => /^(READ|KEYFILE|REACHED|WROTE) /.test(l))).toEqual([]);
    // bwrap's own PID 1 shows only what the step was given.
    const pid1 = text.split('\n').filter((l) => l.startsWith('ENV /proc/1/environ '));
    expect(pid1.filter((l) => /TOKEN|SECRET|AWS_|TEMPORAL_|GITHUB/.test(l))).toEqual([]);
    // The step itself got its CONVEYOR_* values (it can see its own environment, nothing else).
    expect(text).toMatch(/^ENV \/proc\/\d+\/environ CONVEYOR_COMMIT=[0-9a-f]{40}$/m);
    for (const w of ['/usr/owned', '/etc/owned', '/owned', path.join(outside, 'owned'), path.join(ROOT, 'owned')]) {
      expect({ w, exists: fs.existsSync(w) }).toEqual({ w, exists: false });
    }
    const left = await runProcess('pgrep', ['-f', MARKER]);
    expect(left.output.trim()).toBe('');
    expect(left.exitCode).toBe(1);
  });

  it.each([
    ['forkbomb', 'sandbox.limits.pids'],
    ['memory', 'sandbox.limits.memoryMb'],
    ['disk', 'sandbox.limits.diskMb'],
  ])('stops %s at its limit, naming it', async (mode, limit) => {
    const id = await push(mode);
    const status = await waitForStatus(client, id, 'awaiting-operator', 180_000);
    const test = status.stages.find((s) => s.name === 'test');
    expect(test?.state).toBe('failed');
    expect(test?.error).toContain(limit);
    await client.workflow.getHandle(id).signal('abort', { reason: 'hostile', by: 'test' });
    await waitForStatus(client, id, 'aborted');
    const left = await runProcess('pgrep', ['-f', `sleep ${BOMB_SLEEP}`]);
    expect(left.output.trim()).toBe('');
  });

  it('leaves the chain working for the next project on the same workers', async () => {
    const commit = await commitSample(goodBare, path.join(work, '..', 'good-work'), { message: 'after the attack' });
    const res = await sendWebhook(
      apiUrl,
      SECRET,
      'push',
      pushPayload({ repository: 'good/widget', branch: 'main', sha: commit.sha, before: commit.before }),
    );
    expect(res.status).toBe(202);
    const status = await waitForStatus(client, res.body.workflowId as string, 'succeeded', 180_000);
    expect(status.stages.map((s) => `${s.name}:${s.state}`)).toEqual([
      'test:succeeded',
      'package:succeeded',
      'publish:succeeded',
      'promote:succeeded',
    ]);
  });

  it('keeps every canary out of every workflow history', async () => {
    const ids: string[] = [];
    for await (const run of client.workflow.list({ query: `ConveyorRepository = "evil/repo"` })) {
      for await (const wf of client.workflow.list({ query: `RootWorkflowId = "${run.workflowId}"` })) {
        ids.push(wf.workflowId);
      }
    }
    expect(ids.length).toBeGreaterThan(0);
    for (const wid of ids) {
      const history = JSON.stringify(await client.workflow.getHandle(wid).fetchHistory());
      for (const [name, value] of Object.entries(CANARIES)) {
        expect({ wid, name, found: history.includes(value) }).toEqual({ wid, name, found: false });
      }
    }
  });
});
