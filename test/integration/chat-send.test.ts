// The chat activity against a local Slack stand-in: it never throws, whatever Slack or the config
// does; it reads only the credentials its own config names; a refused token is never repeated in
// its reason; rate limits longer than it waits are given up on, saying so.
import { MockActivityEnvironment } from '@temporalio/testing';
import { createChatActivities } from '../../activities/chat/send-chat-message';
import type { SendChatMessageInput } from '../../common/chat';
import { freePort } from '../../cli/local-stack/services';
import { startFakeSlack, type FakeSlack } from '../helpers/fake-slack';
import { silentLogger } from '../helpers/stack';

const TOKEN = 'xoxb-chat-send-test';

describe('sendChatMessage', () => {
  let slack: FakeSlack;
  beforeAll(async () => {
    slack = await startFakeSlack({ botToken: TOKEN });
  });
  afterAll(() => slack?.close());

  const run = {
    workflowId: `pipeline/acme/w/main/${'b'.repeat(40)}`,
    repository: 'acme/w',
    branch: 'main',
    sha: 'b'.repeat(40),
    title: 't',
  };
  const bot = (over: Partial<SendChatMessageInput> = {}): SendChatMessageInput => ({
    route: { events: ['started'], channel: 'C0SEND', via: { kind: 'bot', tokenEnv: 'BOT' } },
    run,
    event: { seq: 0, kind: 'started' },
    ...over,
  });
  const warnings: string[] = [];
  const logger = {
    info: () => undefined,
    warn: (m: string, meta?: Record<string, unknown>) => void warnings.push(`${m} ${JSON.stringify(meta)}`),
  };
  const activities = (
    env: Record<string, string>,
    o: { allowed?: string[]; maxWaitMs?: number; apiUrl?: string } = {},
  ) =>
    createChatActivities({
      apiUrl: o.apiUrl ?? `${slack.url}/api`,
      allowedEnv: new Set(o.allowed ?? ['BOT', 'HOOK']),
      env,
      logger,
      maxWaitMs: o.maxWaitMs,
    });

  it('posts with the bot token, threads under the given ts, and answers the new ts', async () => {
    const a = activities({ BOT: TOKEN });
    const first = await a.sendChatMessage(bot());
    expect(first).toEqual({ sent: true, ts: expect.stringMatching(/^\d+\.000100$/) });
    const reply = await a.sendChatMessage(
      bot({ event: { seq: 1, kind: 'stage-failed', stage: 'test' }, threadTs: first.ts }),
    );
    expect(reply.sent).toBe(true);
    expect(slack.requests.at(-1)?.body).toMatchObject({
      channel: 'C0SEND',
      thread_ts: first.ts,
      reply_broadcast: true,
    });
  });

  it('never throws: unknown env name, unset credential, refused token, unreachable Slack, a rate limit too long to wait', async () => {
    expect(
      await activities({ SIGNING_KEY: 'secret' }).sendChatMessage(
        bot({ route: { events: ['started'], channel: 'C', via: { kind: 'bot', tokenEnv: 'SIGNING_KEY' } } }),
      ),
    ).toEqual({
      sent: false,
      reason: "SIGNING_KEY is not a chat credential of this worker's conveyor.yml: not read",
    });
    expect(await activities({}).sendChatMessage(bot())).toEqual({
      sent: false,
      reason: 'BOT is not set on the orchestrator',
    });
    const refused = await activities({ BOT: 'xoxb-wrong-token' }).sendChatMessage(bot());
    expect(refused).toEqual({
      sent: false,
      reason: 'Slack refused the message: invalid_auth (the bot token was rejected)',
    });
    const port = await freePort();
    const down = await createChatActivities({
      apiUrl: `http://127.0.0.1:${port}/api`,
      allowedEnv: new Set(['BOT']),
      env: { BOT: TOKEN },
      logger,
      maxAttempts: 2,
    }).sendChatMessage(bot());
    expect(down).toEqual({ sent: false, reason: expect.stringMatching(/^Slack unreachable: /) });
    slack.rateLimit((r) => r.path === '/api/chat.postMessage', 120);
    const limited = await activities({ BOT: TOKEN }, { maxWaitMs: 5000 }).sendChatMessage(bot());
    expect(limited).toEqual({ sent: false, reason: 'rate limited by Slack (429); not waiting 120 s' });
    expect(warnings.join('\n')).not.toContain(TOKEN);
    expect(warnings.join('\n')).not.toContain('xoxb-wrong-token');
  });

  it('heartbeats while it waits out a rate limit, and a cancellation during the wait ends it at once', async () => {
    const waited = new MockActivityEnvironment(undefined, { logger: silentLogger });
    let beats = 0;
    waited.on('heartbeat', () => void (beats += 1));
    slack.rateLimit((r) => r.path === '/api/chat.postMessage', 6);
    const t0 = Date.now();
    const sent = await waited.run(activities({ BOT: TOKEN }).sendChatMessage, bot());
    expect(sent).toMatchObject({ sent: true });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(6000);
    // One at the start and one every 5 s: a worker that died during the wait is noticed.
    expect(beats).toBeGreaterThanOrEqual(2);

    const cancelled = new MockActivityEnvironment(undefined, { logger: silentLogger });
    slack.rateLimit((r) => r.path === '/api/chat.postMessage', 30);
    const t1 = Date.now();
    const pending = cancelled.run(activities({ BOT: TOKEN }).sendChatMessage, bot());
    setTimeout(() => cancelled.cancel(), 300);
    expect(await pending).toEqual({ sent: false, reason: 'cancelled' });
    expect(Date.now() - t1).toBeLessThan(10_000);
  });

  it('an incoming webhook: the URL from the env var, no token, no thread', async () => {
    const hook = `${slack.url}/hooks/send-test`;
    const r = await activities({ HOOK: hook }).sendChatMessage(
      bot({ route: { events: ['started'], via: { kind: 'webhook', urlEnv: 'HOOK' } }, threadTs: '1.2' }),
    );
    expect(r).toEqual({ sent: true });
    const req = slack.requests.at(-1)!;
    expect(req.path).toBe('/hooks/send-test');
    expect(req.tokenMatches).toBeUndefined();
    expect(req.body).not.toHaveProperty('thread_ts');
    expect(
      await activities({ HOOK: 'not a url' }).sendChatMessage(
        bot({ route: { events: ['started'], via: { kind: 'webhook', urlEnv: 'HOOK' } } }),
      ),
    ).toEqual({
      sent: false,
      reason: 'HOOK does not hold an http(s) URL',
    });
  });
});
