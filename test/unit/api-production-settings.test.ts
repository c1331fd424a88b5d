// Settings that are only safe on a laptop are refused outside it, each with the fix in the
// message (config/production.ts), and the API's config keys validate and default as documented.
import fs from 'node:fs';
import path from 'node:path';
import { type ConfigError, loadConfig, type ConveyorConfig } from '../../config/conveyor';
import {
  chrootExecutorProblems,
  isLoopbackHost,
  isLoopbackUrl,
  productionProblems,
  statusListenerProblems,
} from '../../config/production';
import { testTempDir } from '../helpers/temp';

const ROOT = path.resolve(__dirname, '..', '..');
const GOOD_SECRET = 'f'.repeat(64);

function load(extra = ''): ConveyorConfig {
  const dir = testTempDir('conveyor-prod-');
  const file = path.join(dir, 'conveyor.yml');
  fs.writeFileSync(
    file,
    `
storage: { artifacts: s3://a-bucket, staging: s3://s-bucket, production: s3://p-bucket }
distros: { bookworm: { format: deb, codename: bookworm, arch: amd64 } }
repositories: []
${extra}
`,
  );
  return loadConfig(file, {});
}

/** A production-shaped config: real AWS (no endpoint), https GitHub, no local hosts. */
const prod = (extra = '') => load(extra);
const env = (over: Record<string, string> = {}) => ({ GITHUB_WEBHOOK_SECRET: GOOD_SECRET, ...over });
const apiCtx = (over: Parameters<typeof productionProblems>[1] = {}) => ({
  listenHost: '0.0.0.0',
  env: env(),
  ...over,
});

describe('production settings', () => {
  it('a production-shaped config with a long secret has no problems', () => {
    expect(productionProblems(prod(), apiCtx())).toEqual([]);
  });

  it('the local stack (conveyor.dev.yml: loopback AWS endpoint, hostsDir) is fine on loopback', () => {
    const dev = loadConfig(path.join(ROOT, 'conveyor.dev.yml'), {});
    expect(productionProblems(dev, { listenHost: '127.0.0.1', env: env() })).toEqual([]);
    expect(productionProblems(dev, { listenHost: '127.0.0.1', insecureDev: true, env: {} })).toEqual([]);
  });

  it('no webhook secret: names the env var and the way out', () => {
    expect(productionProblems(prod(), apiCtx({ env: {} }))).toEqual([
      'no webhook secret: set GITHUB_WEBHOOK_SECRET (github.webhookSecretEnv), ' +
        'or pass --insecure-dev to accept unsigned webhooks on a development machine',
    ]);
  });

  it('a short webhook secret: says how long and how to make one', () => {
    expect(productionProblems(prod(), apiCtx({ env: { GITHUB_WEBHOOK_SECRET: 'hunter2' } }))).toEqual([
      'the webhook secret in GITHUB_WEBHOOK_SECRET (github.webhookSecretEnv) has 7 characters: use at least 16 ' +
        "random ones (e.g. `openssl rand -hex 32`), and set the same value as the webhook's secret on GitHub",
    ]);
    expect(productionProblems(prod(), apiCtx({ env: { GITHUB_WEBHOOK_SECRET: 'x'.repeat(16) } }))).toEqual([]);
  });

  it('--insecure-dev on a non-loopback address', () => {
    expect(productionProblems(prod(), apiCtx({ insecureDev: true, env: {} }))).toEqual([
      '--insecure-dev accepts unsigned webhooks from anyone who can reach 0.0.0.0: listen on 127.0.0.1 ' +
        '(--host 127.0.0.1) for local development, or drop --insecure-dev and set the webhook secret ' +
        '(github.webhookSecretEnv)',
    ]);
    for (const host of ['127.0.0.1', '::1', 'localhost', '127.1.2.3']) {
      expect(productionProblems(prod(), apiCtx({ insecureDev: true, listenHost: host, env: {} }))).toEqual([]);
    }
  });

  it('an http:// GitHub API outside loopback', () => {
    expect(productionProblems(prod('github: { apiUrl: "http://ghe.example.com/api/v3" }'), apiCtx())).toEqual([
      'github.apiUrl http://ghe.example.com/api/v3 is plain http: the GitHub token would cross the network ' +
        'unencrypted; use https:// (GitHub Enterprise Server: https://HOST/api/v3)',
    ]);
    expect(productionProblems(prod('github: { apiUrl: "http://127.0.0.1:9999" }'), apiCtx())).toEqual([]);
    expect(productionProblems(prod('github: { apiUrl: "https://ghe.example.com/api/v3" }'), apiCtx())).toEqual([]);
  });

  it('the root chroot executor (fleet.hostsDir) outside the local stack, also for workers', () => {
    const realAws = prod('fleet: { hostsDir: .dev/hosts }');
    const message =
      'the local executor runs host commands as root in local host directories and is for the local stack only; remove ' +
      'fleet.hostsDir and tag staging instances ConveyorExecutor=ssm (or ssh with fleet.ssh)';
    expect(chrootExecutorProblems(realAws)).toEqual([`fleet.hostsDir is set but aws.endpoint is unset: ${message}`]);
    // Workers (no listenHost) get the config-wide checks only: no webhook secret needed there.
    expect(productionProblems(realAws, { env: {} })).toEqual([
      `fleet.hostsDir is set but aws.endpoint is unset: ${message}`,
    ]);
    const remote = prod('fleet: { hostsDir: .dev/hosts }\naws: { endpoint: "http://minio.internal:9000" }');
    expect(chrootExecutorProblems(remote)).toEqual([
      `fleet.hostsDir is set but aws.endpoint http://minio.internal:9000 is not on loopback: ${message}`,
    ]);
    expect(
      chrootExecutorProblems(prod('fleet: { hostsDir: .dev/hosts }\naws: { endpoint: "http://127.0.0.1:5000" }')),
    ).toEqual([]);
  });

  it('the status listener beyond loopback without a token, a token env var that is unset, a short token', () => {
    expect(statusListenerProblems(prod('api: { statusHost: 0.0.0.0 }'), { env: {} })).toEqual([
      'api.statusHost 0.0.0.0 serves /runs and /metrics without authentication beyond this machine: set ' +
        'api.statusTokenEnv to require a bearer token, or bind it to 127.0.0.1',
    ]);
    const withToken = prod('api: { statusHost: 0.0.0.0, statusTokenEnv: CONVEYOR_STATUS_TOKEN }');
    expect(statusListenerProblems(withToken, { env: { CONVEYOR_STATUS_TOKEN: 't'.repeat(32) } })).toEqual([]);
    expect(statusListenerProblems(withToken, { env: {} })).toEqual([
      'api.statusTokenEnv names CONVEYOR_STATUS_TOKEN, which is not set: put the bearer token for /runs and ' +
        '/metrics in CONVEYOR_STATUS_TOKEN, or remove api.statusTokenEnv to serve them on loopback only',
    ]);
    expect(statusListenerProblems(withToken, { env: { CONVEYOR_STATUS_TOKEN: 'short' } })).toEqual([
      'the status token in CONVEYOR_STATUS_TOKEN (api.statusTokenEnv) has 5 characters: use at least 16 random ' +
        'ones (e.g. `openssl rand -hex 32`)',
    ]);
    // --status-host wins over the config.
    expect(statusListenerProblems(prod(), { statusHost: '10.0.0.5', env: {} })).toHaveLength(1);
  });

  it('reports every problem at once', () => {
    const bad = prod('github: { apiUrl: "http://ghe.example.com" }\nfleet: { hostsDir: /srv/hosts }');
    const problems = productionProblems(bad, apiCtx({ insecureDev: true, env: { GITHUB_WEBHOOK_SECRET: 'short' } }));
    expect(problems.map((p) => p.split(' ')[0])).toEqual(['the', '--insecure-dev', 'github.apiUrl', 'fleet.hostsDir']);
  });

  it('loopback means 127.0.0.0/8, ::1 and localhost only', () => {
    expect(['127.0.0.1', '127.9.9.9', '::1', '[::1]', 'localhost', 'LOCALHOST'].every(isLoopbackHost)).toBe(true);
    expect(['0.0.0.0', '::', '10.0.0.1', 'example.com', '127.0.0.1.nip.io'].some(isLoopbackHost)).toBe(false);
    expect(isLoopbackUrl('http://127.0.0.1:5000')).toBe(true);
    expect(isLoopbackUrl('http://[::1]:5000/x')).toBe(true);
    expect(isLoopbackUrl('http://localhost.example.com')).toBe(false);
    expect(isLoopbackUrl(undefined)).toBe(false);
    expect(isLoopbackUrl('not a url')).toBe(false);
  });
});

describe('api settings in conveyor.yml', () => {
  it('defaults: status listener on loopback, bounded intake', () => {
    expect(prod().api).toEqual({
      maxBodyBytes: 25 * 1024 * 1024,
      spoolDir: '.conveyor/spool',
      startTimeoutMs: 5000,
      statusHost: '127.0.0.1',
      statusPort: 3001,
      maxConnections: 256,
      maxBufferedBytes: 64 * 1024 * 1024,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 15_000,
    });
  });

  it('refuses a token inline, a budget smaller than one body, headers slower than the request', () => {
    const problems = (extra: string) => {
      try {
        prod(extra);
        return [];
      } catch (err) {
        return (err as ConfigError).problems;
      }
    };
    expect(problems('api: { statusTokenEnv: "s3cr3t-value" }')).toEqual([
      'api.statusTokenEnv: must be an environment variable name',
    ]);
    expect(problems('api: { statusToken: "s3cr3t" }')[0]).toMatch(/^api: Unrecognized key: "statusToken"/);
    expect(problems('api: { maxBodyBytes: 1000, maxBufferedBytes: 999 }')).toEqual([
      'api.maxBufferedBytes: must be at least maxBodyBytes (1000), or no body of the largest size fits',
    ]);
    expect(problems('api: { headersTimeoutMs: 20000, requestTimeoutMs: 15000 }')).toEqual([
      'api.headersTimeoutMs: must not exceed requestTimeoutMs (15000): the headers are part of the request',
    ]);
  });
});
