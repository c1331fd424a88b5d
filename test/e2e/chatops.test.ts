// ChatOps end to end, against the test stack's Temporal server, real workers and the real API over
// HTTP, with a local stand-in for Slack (test/helpers/fake-slack.ts): notifications in order for a
// passing, a failing and an approval run (bot token threads, incoming webhook repeats the link);
// a rate limit waited out as Retry-After asks without holding the run; Approve by button and by
// slash command moving real runs on; and a bad signature, an old timestamp, an unknown user and a
// user without the right each refused, changing nothing.
import path from 'node:path';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { createApi, listen, type Api } from '../../api/server';
import { slackSignature } from '../../api/slack/verify-signature';
import { CHAT_BUTTONS, chatNotifierId } from '../../common/chat';
import type { PipelineStatus } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import { commitSample } from '../../cli/demo/sample-repo';
import { pushPayload, sendWebhook } from '../../cli/webhook-client';
import { startFakeSlack, type FakeSlack, type SlackRequest } from '../helpers/fake-slack';
import { awsFor, clientFor, startWorkers, tempDir, testConfig, uid, waitForStatus } from '../helpers/stack';

const id = uid();
const ID = id.toUpperCase();
// Names of this file only: entity workflows (branch-state) are shared on the one test server.
const PASS = `acme/chat-pass-${id}`;
const FAIL = `acme/chat-fail-${id}`;
const GATED = `acme/chat-gated-${id}`;
const GATED2 = `acme/chat-gated2-${id}`;
const FLAKY = `acme/chat-flaky-${id}`;
const BOT_ENV = `CHAT_TEST_BOT_${ID}`;
const HOOK_ENV = `CHAT_TEST_HOOK_${ID}`;
const SIGNING_SECRET = `chat-test-signing-secret-${id}`;
const BOT_TOKEN = `xoxb-test-${id}`;
const TEAM = 'T0TEST';
const GITHUB_SECRET = 'g'.repeat(32);

describe('ChatOps with Slack', () => {
  let slack: FakeSlack;
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let api: Api;
  let apiUrl: string;
  let slowApi: Api;
  let slowApiUrl: string;
  let bare: string;
  let work: string;
  const logs: string[] = [];

  beforeAll(async () => {
    slack = await startFakeSlack({ botToken: BOT_TOKEN });
    const dir = tempDir('chatops');
    bare = path.join(dir, 'widget.git');
    work = path.join(dir, 'work');
    const marker = path.join(dir, 'flaky-marker');
    const gated = (name: string, channel: string, slackChannel: string) => ({
      name,
      cloneUrl: bare,
      branches: [{ match: 'main', channel, approval: true }],
      steps: { unit: 'true', package: 'make package' },
      more: { packages: ['widget'], notify: [{ channel: slackChannel }] },
    });
    config = testConfig(
      [
        // Incoming webhook: every event, no threads.
        { name: PASS, cloneUrl: bare, steps: { unit: 'true' }, more: { notify: [{ webhookUrlEnv: HOOK_ENV }] } },
        // Bot token, events chosen per branch rule.
        {
          name: FAIL,
          cloneUrl: bare,
          steps: { unit: 'echo chat broken step; exit 3' },
          branches: [
            {
              match: 'main',
              channel: 'unstable',
              notify: [{ channel: 'C0FAIL', events: ['started', 'stage-failed', 'aborted'] }],
            },
          ] as never,
        },
        // Fails once: the marker lives on the host, which only an unsandboxed step sees.
        {
          name: FLAKY,
          cloneUrl: bare,
          steps: { unit: `test -f ${marker} || { touch ${marker}; echo flaky once; exit 1; }` },
          more: { sandbox: { mode: 'none' }, notify: [{ channel: 'C0FLAKY' }] },
        },
        gated(GATED, 'unstable', 'C0GATED'),
        gated(GATED2, 'testing', 'C0GATED2'),
      ],
      {
        chat: {
          slack: {
            apiUrl: `${slack.url}/api`,
            botTokenEnv: BOT_ENV,
            signingSecretEnv: `CHAT_TEST_SIGNING_${ID}`,
            teamId: TEAM,
            responseUrlPrefixes: [`${slack.url}/response/`],
          },
          groups: { releasers: ['U0REL'] },
          access: {
            [GATED]: { 'group:releasers': ['status', 'approve', 'reject'], U0DEV: ['status', 'retry'] },
            [GATED2]: { 'group:releasers': ['approve'] },
            '*': { U0OPS: ['status', 'abort', 'retry'] },
            [FLAKY]: { U0DEV: ['retry'] },
          },
        },
      },
    );
    process.env[BOT_ENV] = BOT_TOKEN;
    process.env[HOOK_ENV] = `${slack.url}/hooks/pass-${id}`;
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
    api = createApi({ config, client, logger, secret: GITHUB_SECRET, slackSecret: SIGNING_SECRET });
    apiUrl = `http://127.0.0.1:${await listen(api.server, 0)}`;
    // The same API with no time to answer in the request: every answer goes to response_url.
    slowApi = createApi({
      config,
      client,
      logger,
      secret: GITHUB_SECRET,
      slackSecret: SIGNING_SECRET,
      slackAckWithinMs: 0,
    });
    slowApiUrl = `http://127.0.0.1:${await listen(slowApi.server, 0)}`;
  });

  afterAll(async () => {
    await api?.close();
    await slowApi?.close();
    await workers?.stop();
    await client?.connection.close();
    await slack?.close();
    delete process.env[BOT_ENV];
    delete process.env[HOOK_ENV];
  });

  /** A push of the sample project, delivered to the API's GitHub webhook as GitHub would. */
  async function start(repository: string, message = `chatops ${repository}`) {
    const { sha } = await commitSample(bare, work, { message });
    const r = await sendWebhook(
      apiUrl,
      GITHUB_SECRET,
      'push',
      pushPayload({ repository, branch: 'main', sha, message }),
    );
    expect(r).toMatchObject({ status: 202, body: { status: 'started' } });
    return { sha, workflowId: r.body.workflowId! };
  }

  /** Posts a form to the API as Slack would: signed with the app's secret at `timestamp`. */
  async function slackPost(
    form: Record<string, string>,
    o: { secret?: string; timestamp?: number; signature?: string; url?: string } = {},
  ): Promise<{ status: number; body: { response_type?: string; text?: string; error?: string }; ms: number }> {
    const body = new URLSearchParams(form).toString();
    const ts = String(o.timestamp ?? Math.floor(Date.now() / 1000));
    const t0 = Date.now();
    const res = await fetch(`${o.url ?? apiUrl}/webhooks/slack`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-slack-request-timestamp': ts,
        'x-slack-signature': o.signature ?? slackSignature(o.secret ?? SIGNING_SECRET, ts, body),
      },
      body,
    });
    const text = await res.text();
    return { status: res.status, body: JSON.parse(text || '{}') as never, ms: Date.now() - t0 };
  }

  const command = (user: string, text: string, responseName = uid(), url?: string) =>
    slackPost(
      {
        token: 'legacy-verification-token',
        team_id: TEAM,
        channel_id: 'C0OPS',
        user_id: user,
        user_name: user.slice(2).toLowerCase(),
        command: '/conveyor',
        text,
        response_url: `${slack.url}/response/${responseName}`,
        trigger_id: '1.2.3',
      },
      { url },
    );

  const button = (user: string, action: string, workflowId: string, responseName: string) =>
    slackPost({
      payload: JSON.stringify({
        type: 'block_actions',
        user: { id: user, username: user.slice(2).toLowerCase(), team_id: TEAM },
        team: { id: TEAM, domain: 'test' },
        api_app_id: 'A0TEST',
        container: { type: 'message', message_ts: '1.1', channel_id: 'C0GATED' },
        channel: { id: 'C0GATED', name: 'gated' },
        response_url: `${slack.url}/response/${responseName}`,
        trigger_id: '1.2.3',
        actions: [
          { type: 'button', action_id: action, block_id: 'conveyor_approval', value: workflowId, action_ts: '1.2' },
        ],
      }),
    });

  /** The messages of a run, as Slack accepted them, in order. */
  const messagesOf = (workflowId: string, accepted = true): SlackRequest[] =>
    slack.requests.filter(
      (r) =>
        (r.path === '/api/chat.postMessage' || r.path.startsWith('/hooks/')) &&
        JSON.stringify(r.body.blocks ?? '').includes(workflowId) &&
        (!accepted || r.status === 200),
    );
  const kinds = (ms: SlackRequest[]) =>
    ms.map((m) => {
      const t = String(m.body.text);
      for (const [k, re] of [
        ['started', /: run started/],
        ['stage-failed', /: stage \S+ failed/],
        ['awaiting-approval', /: waiting for approval/],
        ['succeeded', /: succeeded/],
        ['aborted', /: aborted/],
        ['rejected', /: rejected/],
      ] as const)
        if (re.test(t)) return k;
      return t;
    });
  const responses = (name: string) =>
    slack.requests
      .filter((r) => r.path === `/response/${name}`)
      .map((r) => r.body as { text: string; response_type: string });
  const notifierDone = (workflowId: string) =>
    client.workflow.getHandle(chatNotifierId(workflowId)).result() as Promise<{ sent: number; skipped: number }>;
  const statusOf = (workflowId: string) => client.workflow.getHandle(workflowId).query<PipelineStatus>('status');
  async function until<T>(fn: () => T | undefined, what: string, ms = 30000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('a passing run: started then succeeded on the incoming webhook, each with the link; a 429 is waited out as Retry-After says, and never holds the run', async () => {
    // The first message meets a rate limit of 1 s; the last one one of 3 s.
    slack.rateLimit((r) => r.path === `/hooks/pass-${id}` && /run started/.test(String(r.body.text)), 1);
    slack.rateLimit((r) => r.path === `/hooks/pass-${id}` && /succeeded/.test(String(r.body.text)), 3);
    const { workflowId, sha } = await start(PASS, 'Make <!here> widgets & more\n\nbody');
    const result = (await client.workflow.getHandle(workflowId).result()) as { status: string };
    const ended = Date.now();
    expect(result.status).toBe('succeeded');
    // The run is over while its last message still waits out the rate limit.
    expect(messagesOf(workflowId).some((m) => /succeeded/.test(String(m.body.text)))).toBe(false);

    expect(await notifierDone(workflowId)).toEqual({ sent: 2, skipped: 0 });
    const all = messagesOf(workflowId, false);
    expect(all.map((m) => m.status)).toEqual([429, 200, 429, 200]);
    expect(all[1].at - all[0].at).toBeGreaterThanOrEqual(950);
    expect(all[3].at - all[2].at).toBeGreaterThanOrEqual(2950);
    expect(all[3].at).toBeGreaterThan(ended);
    const ok = messagesOf(workflowId);
    expect(kinds(ok)).toEqual(['started', 'succeeded']);
    for (const m of ok) {
      const text = JSON.stringify(m.body);
      expect(text).toContain(PASS);
      expect(text).toContain(sha.slice(0, 7));
      expect(text).toContain('Make &lt;!here&gt; widgets &amp; more');
      expect(text).not.toContain('<!here>');
      // Webhook messages cannot thread: each repeats the link to the run.
      expect(text).toContain(`http://127.0.0.1:8233/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
      expect(m.body).not.toHaveProperty('thread_ts');
      expect(m.tokenMatches).toBeUndefined();
    }
    // No secret in the histories: the run's and its notifier's inputs carry env var names only.
    for (const wf of [workflowId, chatNotifierId(workflowId)]) {
      const history = JSON.stringify(await client.workflow.getHandle(wf).fetchHistory());
      expect(history).not.toContain(BOT_TOKEN);
      expect(history).not.toContain(`/hooks/pass-${id}`);
      expect(history).not.toContain(Buffer.from(`/hooks/pass-${id}`).toString('base64'));
    }
    expect(logs.join('')).not.toContain(BOT_TOKEN);
  });

  it('a failing run: started, the failed stage with its log tail threaded under it; an abort by slash command ends it, recorded with the chat user', async () => {
    const { workflowId } = await start(FAIL);
    await waitForStatus(client, workflowId, 'awaiting-operator');
    const [first, failed] = await until(() => {
      const m = messagesOf(workflowId);
      return m.length >= 2 ? m : undefined;
    }, 'the stage-failed message');
    expect(kinds([first, failed])).toEqual(['started', 'stage-failed']);
    expect(first.tokenMatches).toBe(true);
    expect(first.body).toMatchObject({ channel: 'C0FAIL' });
    expect(first.body).not.toHaveProperty('thread_ts');
    expect(failed.body).toMatchObject({ channel: 'C0FAIL', thread_ts: first.ts, reply_broadcast: true });
    expect(JSON.stringify(failed.body.blocks)).toContain('chat broken step');
    expect(JSON.stringify(failed.body.blocks)).toContain(`/conveyor retry ${workflowId}`);

    // U0DEV holds no right on this repository; U0OPS may abort everywhere.
    const refused = await command('U0DEV', `abort ${workflowId} no`);
    expect(refused.status).toBe(200);
    expect(refused.body).toEqual({
      response_type: 'ephemeral',
      text: `refused: you (U0DEV) may not abort ${FAIL} (you hold no action on it)`,
    });
    expect((await statusOf(workflowId)).status).toBe('awaiting-operator');

    const status = await command('U0OPS', `status ${FAIL}/main`);
    expect(status.body.text).toContain(`\`${workflowId}\`: awaiting-operator, stage test`);
    expect(status.body.text).toContain('test failed (attempt 1)');

    const abort = await command('U0OPS', `abort ${FAIL}/main broken commit`);
    expect(abort.status).toBe(200);
    expect(abort.ms).toBeLessThan(3000);
    expect(abort.body).toEqual({ response_type: 'in_channel', text: `aborted ${workflowId} (by slack:U0OPS (ops))` });
    await expect(client.workflow.getHandle(workflowId).result()).rejects.toThrow();
    const s = await statusOf(workflowId);
    expect(s).toMatchObject({ status: 'aborted', failure: 'aborted by slack:U0OPS (ops): broken commit' });
    expect(s.actions).toEqual([
      expect.objectContaining({ action: 'abort', by: 'slack:U0OPS (ops)', detail: 'broken commit', accepted: true }),
    ]);

    expect(await notifierDone(workflowId)).toEqual({ sent: 3, skipped: 0 });
    const all = messagesOf(workflowId);
    expect(kinds(all)).toEqual(['started', 'stage-failed', 'aborted']);
    expect(all[2].body).toMatchObject({ thread_ts: first.ts, reply_broadcast: false });
    expect(JSON.stringify(all[2].body.blocks)).toContain('aborted by slack:U0OPS (ops): broken commit');
  });

  it('an approval run: the buttons; a bad signature, an old timestamp, an unknown user and a user without the right change nothing; Approve by button promotes it', async () => {
    const { workflowId } = await start(GATED);
    await waitForStatus(client, workflowId, 'awaiting-approval', 90000);
    const approval = await until(
      () => messagesOf(workflowId).find((m) => /waiting for approval/.test(String(m.body.text))),
      'the approval message',
    );
    const first = messagesOf(workflowId)[0];
    expect(kinds(messagesOf(workflowId))).toEqual(['started', 'awaiting-approval']);
    expect(approval.body).toMatchObject({ channel: 'C0GATED', thread_ts: first.ts, reply_broadcast: true });
    const actions = (
      approval.body.blocks as { type: string; elements?: { action_id: string; value: string }[] }[]
    ).find((b) => b.type === 'actions');
    expect(actions?.elements?.map((e) => [e.action_id, e.value])).toEqual([
      [CHAT_BUTTONS.approve, workflowId],
      [CHAT_BUTTONS.reject, workflowId],
    ]);
    expect(JSON.stringify(approval.body.blocks)).toMatch(/build \d+ \(1\.0\.0-\d+\)/);

    const clickForm = (user: string) => ({
      payload: JSON.stringify({
        type: 'block_actions',
        user: { id: user, team_id: TEAM },
        team: { id: TEAM },
        response_url: `${slack.url}/response/forged`,
        actions: [{ type: 'button', action_id: CHAT_BUTTONS.approve, value: workflowId }],
      }),
    });
    const badSignature = await slackPost(clickForm('U0REL'), { secret: 'not-the-signing-secret' });
    expect(badSignature).toMatchObject({
      status: 401,
      body: { error: 'signature does not match: check chat.slack.signingSecretEnv' },
    });
    const old = await slackPost(clickForm('U0REL'), { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 });
    expect(old.status).toBe(401);
    expect(old.body.error).toContain('more than 5 minutes');
    const unsigned = await slackPost(clickForm('U0REL'), { signature: '' });
    expect(unsigned.status).toBe(401);

    const unknown = await button('U0NOBODY', CHAT_BUTTONS.approve, workflowId, `unknown-${id}`);
    expect(unknown.status).toBe(200);
    const noRight = await button('U0DEV', CHAT_BUTTONS.approve, workflowId, `noright-${id}`);
    expect(noRight.status).toBe(200);
    expect(await until(() => responses(`unknown-${id}`)[0], 'the refusal')).toEqual({
      response_type: 'ephemeral',
      replace_original: false,
      text: 'refused: you (U0NOBODY) are not in chat.access of conveyor.yml: ask whoever runs Conveyor to grant you actions',
    });
    expect((await until(() => responses(`noright-${id}`)[0], 'the refusal')).text).toBe(
      `refused: you (U0DEV) may not approve ${GATED} (your actions there: status, retry)`,
    );
    // Nothing changed: still waiting, nothing recorded, no follow-up to the forged requests.
    const waiting = await statusOf(workflowId);
    expect(waiting.status).toBe('awaiting-approval');
    expect(waiting.actions ?? []).toEqual([]);
    expect(responses('forged')).toEqual([]);

    const approve = await button('U0REL', CHAT_BUTTONS.approve, workflowId, `approve-${id}`);
    expect(approve.status).toBe(200);
    expect(approve.ms).toBeLessThan(3000);
    expect(await until(() => responses(`approve-${id}`)[0], 'the answer')).toEqual({
      response_type: 'in_channel',
      replace_original: false,
      text: `approved ${workflowId} (by slack:U0REL (rel))`,
    });
    expect(((await client.workflow.getHandle(workflowId).result()) as { status: string }).status).toBe('succeeded');
    const done = await statusOf(workflowId);
    expect(done.approval).toMatchObject({ decision: 'approved', by: 'slack:U0REL (rel)' });
    expect(done.actions).toEqual([
      expect.objectContaining({ action: 'approve', by: 'slack:U0REL (rel)', accepted: true }),
    ]);

    // A second click: the run itself refuses, saying why.
    await button('U0REL', CHAT_BUTTONS.reject, workflowId, `again-${id}`);
    expect((await until(() => responses(`again-${id}`)[0], 'the answer')).text).toBe(
      `refused: nothing awaits approval in ${workflowId}: the run is succeeded`,
    );

    expect(await notifierDone(workflowId)).toEqual({ sent: 3, skipped: 0 });
    const all = messagesOf(workflowId);
    expect(kinds(all)).toEqual(['started', 'awaiting-approval', 'succeeded']);
    expect(all.every((m, i) => (i === 0 ? !('thread_ts' in m.body) : m.body.thread_ts === first.ts))).toBe(true);
  });

  it('Approve by slash command (owner/repo/branch): the answer within 3 s, the run promotes; list shows it', async () => {
    const { workflowId } = await start(GATED2);
    await waitForStatus(client, workflowId, 'awaiting-approval', 90000);

    // U0REL may approve GATED2 but not read it; U0OPS may read every repository.
    const read = await command('U0REL', `status ${workflowId}`);
    expect(read.body.text).toBe(`refused: you (U0REL) may not status ${GATED2} (your actions there: approve)`);
    // The list reads visibility, which follows the run by a moment.
    let listed = '';
    for (let i = 0; i < 50 && !listed.includes('awaiting-approval'); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      listed = (await command('U0OPS', `list ${GATED2}/main`)).body.text ?? '';
    }
    expect(listed).toMatch(new RegExp(`^\`${workflowId}\` awaiting-approval \\(\\w+\\) build \\d+$`));
    const bad = await command('U0REL', 'approve');
    expect(bad.body.text).toMatch(/^approve needs a run ID or owner\/repo\/branch/);
    const unconfigured = await command('U0REL', 'approve acme/elsewhere/main');
    expect(unconfigured.body.text).toBe('refused: repository acme/elsewhere is not configured');

    const approve = await command('U0REL', `approve ${GATED2}/main looks good`);
    expect(approve.status).toBe(200);
    expect(approve.ms).toBeLessThan(3000);
    expect(approve.body).toEqual({
      response_type: 'in_channel',
      text: `approved ${workflowId} (by slack:U0REL (rel))`,
    });
    expect(((await client.workflow.getHandle(workflowId).result()) as { status: string }).status).toBe('succeeded');
    expect((await statusOf(workflowId)).approval).toMatchObject({
      decision: 'approved',
      by: 'slack:U0REL (rel)',
      comment: 'looks good',
    });
    expect(await notifierDone(workflowId)).toEqual({ sent: 3, skipped: 0 });
    expect(kinds(messagesOf(workflowId))).toEqual(['started', 'awaiting-approval', 'succeeded']);
  });

  it('retry by slash command re-runs the failed stage; an answer that takes longer than the acknowledgement follows on response_url', async () => {
    const { workflowId } = await start(FLAKY);
    await waitForStatus(client, workflowId, 'awaiting-operator');
    // Through the API that acknowledges at once: the answer comes on response_url.
    const late = await command('U0DEV', `retry ${FLAKY}/main test`, `late-${id}`, slowApiUrl);
    expect(late.body).toEqual({ response_type: 'ephemeral', text: 'working on retry: the answer follows here' });
    expect(await until(() => responses(`late-${id}`)[0], 'the follow-up')).toEqual({
      response_type: 'in_channel',
      replace_original: false,
      text: `retrying ${workflowId}: test (by slack:U0DEV (dev))`,
    });
    expect(((await client.workflow.getHandle(workflowId).result()) as { status: string }).status).toBe('succeeded');
    const s = await statusOf(workflowId);
    expect(s.actions).toEqual([expect.objectContaining({ action: 'retry', by: 'slack:U0DEV (dev)', detail: 'test' })]);
    expect(s.stages[0]).toMatchObject({ name: 'test', state: 'succeeded', attempt: 2 });
    expect(await notifierDone(workflowId)).toEqual({ sent: 3, skipped: 0 });
    expect(kinds(messagesOf(workflowId))).toEqual(['started', 'stage-failed', 'succeeded']);
    // A retry of a run that no longer waits: refused by the run, with its reason.
    const again = await command('U0DEV', `retry ${workflowId}`);
    expect(again.body).toEqual({
      response_type: 'ephemeral',
      text: `refused: nothing awaits an operator in ${workflowId}: the run is succeeded`,
    });
  });

  it('refuses a request of another workspace, bodies over the limit, other content types, and answers nothing on the status listener', async () => {
    const r = await slackPost({ team_id: 'T0OTHER', user_id: 'U0OPS', command: '/conveyor', text: 'list' });
    expect(r.body).toEqual({
      response_type: 'ephemeral',
      text: `refused: this Conveyor answers workspace ${TEAM} only`,
    });
    // Over 1 MB (the Slack intake's cap under api.maxBodyBytes): refused before it is read whole.
    const big = await slackPost({ user_id: 'U0OPS', command: '/conveyor', text: 'list', pad: 'x'.repeat(1024 * 1024) });
    expect(big.status).toBe(413);
    const ts = String(Math.floor(Date.now() / 1000));
    const json = await fetch(`${apiUrl}/webhooks/slack`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-slack-request-timestamp': ts,
        'x-slack-signature': slackSignature(SIGNING_SECRET, ts, '{}'),
      },
      body: '{}',
    });
    expect(json.status).toBe(415);
    const status = await fetch(`http://127.0.0.1:${await listen(api.statusServer, 0)}/webhooks/slack`, {
      method: 'POST',
    });
    expect(status.status).toBe(404);
  });
});
