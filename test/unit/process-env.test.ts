// The local stack starts each process with only its own secrets.
import fs from 'node:fs';
import path from 'node:path';
import { ORCHESTRATOR_NODE_OPTIONS, processEnv } from '../../cli/local-stack/process-env';
import { loadConfig } from '../../config/conveyor';
import { testTempDir } from '../helpers/temp';

const CONFIG = `
github: { webhookSecretEnv: HOOK_SECRET, tokenEnv: GH_TOKEN }
signing: { keyEnv: SIGNING_KEY }
storage: { artifacts: s3://a-bucket, staging: s3://s-bucket, production: s3://p-bucket }
distros: { bookworm: { format: deb, codename: bookworm, arch: amd64 } }
repositories:
  - name: acme/widget
    cloneUrl: https://github.com/acme/widget.git
    checkout: { tokenEnv: WIDGET_READ_TOKEN }
    branches: [{ match: main, channel: unstable }]
    steps: { unit: make test }
    distros: [bookworm]
`;

describe('processEnv: each local stack process holds only its own secrets', () => {
  const file = path.join(testTempDir('conveyor-env-'), 'conveyor.yml');
  fs.writeFileSync(file, CONFIG);
  const config = loadConfig(file, {});
  const base = {
    PATH: '/usr/bin',
    TEMPORAL_ADDRESS: '127.0.0.1:7233',
    HOOK_SECRET: 'h',
    GH_TOKEN: 'g',
    SIGNING_KEY: 's',
    WIDGET_READ_TOKEN: 'r',
    GITHUB_TOKEN: 'default-token',
    GITHUB_WEBHOOK_SECRET: 'default-secret',
  };
  const keys = (role: 'api' | 'orchestrator' | 'builder') => Object.keys(processEnv(role, config, base)).sort();

  it('api: the webhook secret only', () => {
    expect(keys('api')).toEqual(['HOOK_SECRET', 'PATH', 'TEMPORAL_ADDRESS']);
  });
  it('orchestrator: the GitHub token, the signing key, the checkout credentials', () => {
    expect(keys('orchestrator')).toEqual([
      'GH_TOKEN',
      'NODE_OPTIONS',
      'PATH',
      'SIGNING_KEY',
      'TEMPORAL_ADDRESS',
      'WIDGET_READ_TOKEN',
    ]);
  });
  it("orchestrator: a bounded heap, added to the stack's NODE_OPTIONS unless they set one", () => {
    expect(processEnv('orchestrator', config, base).NODE_OPTIONS).toBe(ORCHESTRATOR_NODE_OPTIONS);
    expect(ORCHESTRATOR_NODE_OPTIONS).toBe('--max-old-space-size=1024');
    const withOptions = { ...base, NODE_OPTIONS: '--enable-source-maps' };
    expect(processEnv('orchestrator', config, withOptions).NODE_OPTIONS).toBe(
      `--enable-source-maps ${ORCHESTRATOR_NODE_OPTIONS}`,
    );
    const own = { ...base, NODE_OPTIONS: '--max-old-space-size=4096' };
    expect(processEnv('orchestrator', config, own).NODE_OPTIONS).toBe('--max-old-space-size=4096');
    expect(processEnv('builder', config, withOptions).NODE_OPTIONS).toBe('--enable-source-maps');
    expect(processEnv('api', config, base).NODE_OPTIONS).toBeUndefined();
  });
  it('builder: the read-only checkout credential, nothing else', () => {
    expect(keys('builder')).toEqual(['PATH', 'TEMPORAL_ADDRESS', 'WIDGET_READ_TOKEN']);
  });
  it('the status token (api.statusTokenEnv) goes to the API only', () => {
    const withToken = path.join(testTempDir('conveyor-env-'), 'conveyor.yml');
    fs.writeFileSync(withToken, CONFIG + 'api: { statusTokenEnv: STATUS_TOKEN }\n');
    const cfg = loadConfig(withToken, {});
    const env = { ...base, STATUS_TOKEN: 't' };
    expect(processEnv('api', cfg, env).STATUS_TOKEN).toBe('t');
    expect(processEnv('orchestrator', cfg, env).STATUS_TOKEN).toBeUndefined();
    expect(processEnv('builder', cfg, env).STATUS_TOKEN).toBeUndefined();
  });
  it('Slack: the signing secret to the API only, the bot token and webhook URLs to the orchestrator only', () => {
    const withChat = path.join(testTempDir('conveyor-env-'), 'conveyor.yml');
    fs.writeFileSync(
      withChat,
      CONFIG.replace(
        'steps: { unit: make test }',
        'steps: { unit: make test }\n    notify: [{ channel: "#ci" }, { webhookUrlEnv: WIDGET_HOOK_URL }]',
      ) + 'chat: { slack: { botTokenEnv: BOT_TOKEN, signingSecretEnv: SLACK_SECRET } }\n',
    );
    const cfg = loadConfig(withChat, {});
    const env = {
      ...base,
      BOT_TOKEN: 'xoxb',
      SLACK_SECRET: 's',
      WIDGET_HOOK_URL: 'https://hooks.slack.com/services/x',
      // The usual names are dropped wherever the config does not give them.
      SLACK_BOT_TOKEN: 'default-bot',
      SLACK_SIGNING_SECRET: 'default-secret',
      SLACK_WEBHOOK_URL: 'https://hooks.slack.com/services/y',
    };
    const names = (role: 'api' | 'orchestrator' | 'builder') =>
      Object.keys(processEnv(role, cfg, env)).filter((k) => /SLACK|BOT|HOOK_URL/.test(k));
    expect(names('api')).toEqual(['SLACK_SECRET']);
    expect(names('orchestrator').sort()).toEqual(['BOT_TOKEN', 'WIDGET_HOOK_URL']);
    expect(names('builder')).toEqual([]);
  });
});
