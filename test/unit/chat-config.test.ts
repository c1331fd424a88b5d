// conveyor.yml's ChatOps keys: notify rules per repository and branch rule (credentials by env var
// name only), the Slack settings, and the access map; every mistake reported as path: message.
import fs from 'node:fs';
import path from 'node:path';
import { chatCredentialEnvNames, ConfigError, loadConfig, repositorySpec } from '../../config/conveyor';
import { productionProblems } from '../../config/production';
import { testTempDir } from '../helpers/temp';

const BASE = `
storage: { artifacts: s3://a-bucket, staging: s3://s-bucket, production: s3://p-bucket }
distros:
  bookworm: { format: deb, codename: bookworm, arch: amd64 }
`;

function load(text: string) {
  const dir = testTempDir('conveyor-chat-config-');
  const file = path.join(dir, 'conveyor.yml');
  fs.writeFileSync(file, BASE + text);
  return loadConfig(file, {});
}

function problems(text: string): string[] {
  try {
    load(text);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('the config loaded');
}

const REPO = (extra = '', branchExtra = '') => `
repositories:
  - name: acme/widget
    cloneUrl: https://github.com/acme/widget.git
    branches:
      - { match: main, channel: unstable${branchExtra} }
      - { match: 'v*.*', channel: stable, approval: true }
    steps: { unit: make test }
    distros: [bookworm]
${extra}
`;

describe('conveyor.yml chat', () => {
  it('resolves routes per branch rule: repository rules for every branch, a rule of its own beside them', () => {
    const cfg = load(
      REPO(
        `    notify:
      - { channel: "#ci", events: [stage-failed, awaiting-approval] }
      - { webhookUrlEnv: WIDGET_HOOK }`,
        ', notify: [{ channel: C0MAIN, events: [succeeded] }]',
      ) +
        `chat:
  slack: { botTokenEnv: SLACK_BOT, apiUrl: "http://127.0.0.1:9/api" }
  groups: { releasers: [U0AAA, U0BBB] }
  access:
    acme/widget: { U0CCC: [status, retry], "group:releasers": [approve, reject] }
    "*": { U0ADMIN: [status, approve, reject, retry, abort] }
`,
    );
    const repo = cfg.repositories[0];
    const main = repositorySpec(cfg, repo, repo.branches[0]);
    expect(main.notify).toEqual([
      { events: ['stage-failed', 'awaiting-approval'], channel: '#ci', via: { kind: 'bot', tokenEnv: 'SLACK_BOT' } },
      {
        events: [
          'started',
          'stage-failed',
          'awaiting-approval',
          'succeeded',
          'superseded',
          'aborted',
          'failed',
          'rejected',
          'expired',
        ],
        via: { kind: 'webhook', urlEnv: 'WIDGET_HOOK' },
      },
      { events: ['succeeded'], channel: 'C0MAIN', via: { kind: 'bot', tokenEnv: 'SLACK_BOT' } },
    ]);
    const release = repositorySpec(cfg, repo, repo.branches[1]);
    expect(release.notify).toHaveLength(2);
    // Names only: nothing in a run's input holds a secret.
    expect(JSON.stringify(main)).not.toMatch(/xox|hooks\.slack\.com/);
    expect(chatCredentialEnvNames(cfg).sort()).toEqual(['SLACK_BOT', 'WIDGET_HOOK']);
    expect(cfg.chat?.slack).toEqual({
      apiUrl: 'http://127.0.0.1:9/api',
      botTokenEnv: 'SLACK_BOT',
      signingSecretEnv: 'SLACK_SIGNING_SECRET',
      responseUrlPrefixes: ['https://hooks.slack.com/'],
    });
  });

  it('a run without notify rules carries no notify key (its history stays as before)', () => {
    const cfg = load(REPO());
    expect(repositorySpec(cfg, cfg.repositories[0], cfg.repositories[0].branches[0])).not.toHaveProperty('notify');
  });

  it('reports every mistake in the chat keys at once with its path', () => {
    expect(
      problems(
        REPO(
          `    notify:
      - { events: [exploded], webhookUrlEnv: lower_case }
      - { webhookUrl: "https://hooks.slack.com/services/T/B/x" }`,
        ) +
          `chat:
  slack: { apiUrl: "ftp://slack", responseUrlPrefixes: ["https://hooks.slack.com"] }
  groups: { ops: [alice] }
  access:
    acme/widget: { U0DDD: [deploy], U0EEE: [] }
`,
      ),
    ).toEqual([
      'chat.slack.apiUrl: Invalid URL',
      'chat.slack.responseUrlPrefixes[0]: must end its host with a slash (https://hooks.slack.com/)',
      'chat.groups.ops[0]: must be a Slack user ID (U0123…)',
      expect.stringMatching(/^chat\.access\.acme\/widget\.U0DDD\[0\]: Invalid option: expected one of "status"/),
      'chat.access.acme/widget.U0EEE: grants nothing (actions: status, approve, reject, retry, abort)',
      expect.stringMatching(/^repositories\[0\]\.notify\[0\]\.events\[0\]: Invalid option: expected one of "started"/),
      'repositories[0].notify[0].webhookUrlEnv: must be an environment variable name',
      'repositories[0].notify[1]: Unrecognized key: "webhookUrl"',
    ]);
  });

  it('names bad keys, unknown repositories and groups in the access map, and a bot rule without a channel', () => {
    expect(
      problems(
        REPO(`    notify: [{ events: [started] }]`) +
          `chat:
  slack: { botTokenEnv: SLACK_BOT }
  groups: { Release: [U0AAA] }
  access:
    acme/gadget: { U0CCC: [status] }
    acme/widget: { "group:nobody": [approve], bob: [status] }
`,
      ).sort(),
    ).toEqual([
      'chat.access.acme/gadget: repository acme/gadget is not configured (a configured full name, or * for every repository)',
      'chat.access.acme/widget.bob: must be a Slack user ID (U0123…, from the profile: ⋮ → Copy member ID) or group:<name>',
      'chat.access.acme/widget.group:nobody: unknown group nobody (chat.groups: Release)',
      'chat.groups.Release: group names are lowercase letters, digits, - and _',
      'repositories[0].notify[0].channel: a bot token posts to a channel: name it (C0123… or #releases)',
    ]);
  });

  it('the API refuses to start with chat but no signing secret; the orchestrator refuses an http Slack API beyond loopback', () => {
    const cfg = load(
      REPO() + 'chat: { slack: { apiUrl: "http://slack.example/api", signingSecretEnv: SLACK_SECRET } }\n',
    );
    const api = productionProblems(cfg, { listenHost: '127.0.0.1', env: { GITHUB_WEBHOOK_SECRET: 'x'.repeat(32) } });
    expect(api).toEqual([
      expect.stringContaining('chat is configured but SLACK_SECRET (chat.slack.signingSecretEnv) is not set'),
      'chat.slack.apiUrl http://slack.example/api is plain http: the bot token would cross the network unencrypted; use https://',
    ]);
    const ok = productionProblems(cfg, {
      listenHost: '127.0.0.1',
      env: { GITHUB_WEBHOOK_SECRET: 'x'.repeat(32), SLACK_SECRET: 'y'.repeat(32) },
    });
    expect(ok).toEqual([
      'chat.slack.apiUrl http://slack.example/api is plain http: the bot token would cross the network unencrypted; use https://',
    ]);
  });
});
