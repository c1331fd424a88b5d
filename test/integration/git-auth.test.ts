// Private repositories: checkouts authenticate with a credential referenced from config (a token in
// an env var, a GitHub App installation), handed to git through the environment only. Against a
// real git smart-HTTP server that refuses anonymous reads, and a real step run after the checkout.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { runChecked } from '../../activities/exec/process';
import { createRunStep } from '../../activities/exec/run-step';
import { createGitAuth, sshKeyEnv, tokenHeaderEnv } from '../../activities/git/auth';
import { checkout } from '../../activities/git/checkout';
import { commitSample, type PushedCommit } from '../../cli/demo/sample-repo';
import { ConfigError, loadConfig, parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { repoUrl, startGitHttp, type GitHttpServer } from '../helpers/git-http';
import { awsFor, tempDir, testConfig } from '../helpers/stack';

const TOKEN = `ghp_${crypto.randomBytes(16).toString('hex')}`;

describe('checkout of a private repository', () => {
  let dir: string;
  let server: GitHttpServer;
  let commit: PushedCommit;
  let url: string;
  let accepted: string[];
  let appKeys: crypto.KeyPairSyncResult<string, string>;

  beforeAll(async () => {
    dir = tempDir('git-auth');
    const bare = path.join(dir, 'repos', 'secret.git');
    commit = await commitSample(bare, path.join(dir, 'work'), { message: 'private' });
    appKeys = crypto.generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    accepted = [TOKEN];
    server = await startGitHttp({
      root: path.join(dir, 'repos'),
      tokens: () => [...accepted, ...server.issued],
      app: { appId: 4242, installationId: 99, publicKeyPem: appKeys.publicKey },
    });
    url = repoUrl(server, path.join(dir, 'repos'), bare);
  });
  afterAll(() => server?.close());

  function config(checkout: Record<string, unknown> | undefined): ConveyorConfig {
    return testConfig([{ name: 'acme/secret', cloneUrl: url, steps: {}, more: checkout ? { checkout } : {} }], {
      github: { apiUrl: server.url },
    });
  }

  it('is refused anonymously, with a retryable CheckoutFailed that names no credential', async () => {
    const before = server.counts.refused;
    const err = await checkout(url, commit.sha, path.join(dir, 'anon'), undefined, createGitAuth(config(undefined)))
      .then(() => undefined)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('CheckoutFailed');
    expect((err as ApplicationFailure).nonRetryable).toBe(false);
    expect(server.counts.refused).toBeGreaterThan(before);
  });

  it('authenticates with the token of checkout.tokenEnv, which never lands in .git/config or the error', async () => {
    const auth = createGitAuth(config({ tokenEnv: 'SECRET_REPO_TOKEN' }), { SECRET_REPO_TOKEN: TOKEN });
    const ws = path.join(dir, 'token');
    const before = server.counts.authorized;
    expect(await checkout(url, commit.sha, ws, undefined, auth)).toBe(commit.sha);
    expect(server.counts.authorized).toBeGreaterThan(before);
    const gitDir = fs.readdirSync(path.join(ws, '.git'), { recursive: true, withFileTypes: true });
    for (const f of gitDir.filter((e) => e.isFile())) {
      const text = fs.readFileSync(path.join(f.parentPath, f.name));
      expect(text.includes(TOKEN)).toBe(false);
      expect(text.includes(Buffer.from(`x-access-token:${TOKEN}`).toString('base64'))).toBe(false);
    }
    // A commit the remote does not have: reached, so not retryable, and typed apart from an outage.
    const missing = await checkout(url, 'f'.repeat(40), path.join(dir, 'missing'), undefined, auth).catch(
      (e: unknown) => e as ApplicationFailure,
    );
    expect(missing).toBeInstanceOf(ApplicationFailure);
    expect((missing as ApplicationFailure).type).toBe('CommitNotFound');
    expect((missing as ApplicationFailure).nonRetryable).toBe(true);
    expect(String((missing as ApplicationFailure).message)).not.toContain(TOKEN);
  });

  it('says which variable is missing when the worker lacks the token', async () => {
    const auth = createGitAuth(config({ tokenEnv: 'SECRET_REPO_TOKEN' }), {});
    await expect(checkout(url, commit.sha, path.join(dir, 'unset'), undefined, auth)).rejects.toThrow(
      'the checkout credential of acme/secret names SECRET_REPO_TOKEN, which is not set in this worker',
    );
  });

  it('mints a GitHub App installation token (JWT checked by the server) and checks out with it', async () => {
    const keyFile = path.join(dir, 'app-key.pem');
    fs.writeFileSync(keyFile, appKeys.privateKey, { mode: 0o600 });
    const auth = createGitAuth(config({ githubApp: { appId: 4242, installationId: 99, privateKeyFile: keyFile } }));
    expect(await checkout(url, commit.sha, path.join(dir, 'app'), undefined, auth)).toBe(commit.sha);
    expect(server.issued.length).toBe(1);
    // A second checkout reuses the cached installation token.
    expect(await checkout(url, commit.sha, path.join(dir, 'app2'), undefined, auth)).toBe(commit.sha);
    expect(server.issued.length).toBe(1);
  });

  it('keeps the credential from the step that runs in the checkout', async () => {
    const cfg = config({ tokenEnv: 'SECRET_REPO_TOKEN' });
    const { s3 } = await awsFor(cfg);
    const { bucket, prefix } = parseS3Url(cfg.storage.artifacts);
    const prev = process.env.SECRET_REPO_TOKEN;
    process.env.SECRET_REPO_TOKEN = TOKEN;
    try {
      const runStep = createRunStep({
        s3,
        artifactsBucket: bucket,
        artifactsPrefix: prefix,
        workspaceRoot: cfg.workspace,
        gitAuth: createGitAuth(cfg),
      });
      const r = await runStep({
        pipelineId: 'pipeline/acme/secret/main/x',
        stageWorkflowId: `pipeline/acme/secret/main/${commit.sha}/test`,
        stage: 'test',
        step: 'unit',
        command: 'env; cat .git/config; cat .git/FETCH_HEAD 2>/dev/null; git config --list --show-origin 2>&1 || true',
        cloneUrl: url,
        sha: commit.sha,
        env: {},
      });
      const log = await text(s3, bucket, r.logKey);
      expect(log).toContain('core.repositoryformatversion');
      expect(log).not.toContain(TOKEN);
      expect(log).not.toContain(Buffer.from(`x-access-token:${TOKEN}`).toString('base64'));
      expect(log).not.toContain('SECRET_REPO_TOKEN');
    } finally {
      if (prev === undefined) delete process.env.SECRET_REPO_TOKEN;
      else process.env.SECRET_REPO_TOKEN = prev;
    }
  });

  it('hands git only scoped, environment-borne settings', () => {
    const env = tokenHeaderEnv('https://github.com/acme/secret.git', 'T0K');
    expect(env.GIT_CONFIG_KEY_0).toBe('http.https://github.com/.extraHeader');
    expect(env.GIT_CONFIG_VALUE_0).toBe(`Authorization: Basic ${Buffer.from('x-access-token:T0K').toString('base64')}`);
    expect(() => tokenHeaderEnv('http://git.example.com/acme/secret.git', 'T0K')).toThrow(
      'refusing to send a token over plain HTTP to git.example.com',
    );
    const ssh = sshKeyEnv('/etc/conveyor/deploy-key', '/etc/conveyor/known_hosts');
    expect(ssh.GIT_SSH_COMMAND).toContain('-i /etc/conveyor/deploy-key -o IdentitiesOnly=yes -o IdentityAgent=none');
    expect(ssh.GIT_SSH_COMMAND).toContain('-o StrictHostKeyChecking=yes');
  });

  it('refuses a clone URL with credentials in it at config load, with the fix', () => {
    const file = path.join(dir, 'bad.yml');
    fs.writeFileSync(
      file,
      [
        'storage: { artifacts: s3://a-bucket, staging: s3://s-bucket, production: s3://p-bucket }',
        'distros: { bookworm: { format: deb, codename: bookworm, arch: amd64 } }',
        'repositories:',
        '  - { name: acme/a, cloneUrl: "https://x-access-token:ghp_abc@github.com/acme/a.git", branches: [{ match: main, channel: unstable }], steps: {}, distros: [bookworm] }',
        '  - { name: acme/b, cloneUrl: "https://ghp_abc@github.com/acme/b.git", branches: [{ match: main, channel: unstable }], steps: {}, distros: [bookworm] }',
        '  - { name: acme/c, cloneUrl: "git@github.com:acme/c.git", branches: [{ match: main, channel: unstable }], steps: {}, distros: [bookworm], checkout: { tokenEnv: A, sshKeyFile: /k } }',
      ].join('\n'),
    );
    let err: unknown;
    try {
      loadConfig(file, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toContain('repositories[0].cloneUrl: contains a user name and password');
    expect(problems).toContain('repositories[1].cloneUrl: contains a user name or token');
    expect(problems).toContain('checkout.tokenEnv');
    expect(problems).toContain('repositories[2].checkout: set exactly one of tokenEnv, sshKeyFile and githubApp');
    expect(problems).not.toContain('ghp_abc');
  });

  it('never puts the token in the argv of any git it starts', async () => {
    // argv is visible to every user of the machine in /proc/<pid>/cmdline: a `git` shim first in
    // PATH records the argv of every git the checkout runs, then runs the real one.
    const shimDir = path.join(dir, 'shim');
    const argvLog = path.join(dir, 'git-argv.log');
    const realGit = (await runChecked('sh', ['-c', 'command -v git'])).trim();
    fs.mkdirSync(shimDir, { recursive: true });
    fs.writeFileSync(
      path.join(shimDir, 'git'),
      `#!/bin/sh\nprintf '%s\\n' "$*" >> ${argvLog}\nexec ${realGit} "$@"\n`,
      { mode: 0o755 },
    );
    const prevPath = process.env.PATH;
    process.env.PATH = `${shimDir}:${prevPath}`;
    try {
      const auth = createGitAuth(config({ tokenEnv: 'SECRET_REPO_TOKEN' }), { SECRET_REPO_TOKEN: TOKEN });
      expect(await checkout(url, commit.sha, path.join(dir, 'argv'), undefined, auth)).toBe(commit.sha);
    } finally {
      process.env.PATH = prevPath;
    }
    const argv = fs.readFileSync(argvLog, 'utf8');
    expect(argv).toContain(`fetch --quiet --depth 1 -- ${url} ${commit.sha}`);
    expect(argv).not.toContain(TOKEN);
    expect(argv).not.toContain('Authorization');
  });
});

async function text(s3: S3Client, bucket: string, key: string): Promise<string> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await r.Body?.transformToString()) ?? '';
}
