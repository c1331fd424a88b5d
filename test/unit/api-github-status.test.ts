// The commit status activity against a local stand-in for api.github.com: what it sends, how it
// waits out rate limits (bounded), and that it never throws and never shows the token.
import { MockActivityEnvironment } from '@temporalio/testing';
import { createGithubActivities, type StatusLogger } from '../../activities/github/commit-status';
import { freePort } from '../../cli/local-stack/services';
import { startFakeGithub, type FakeGithub } from '../helpers/fake-github';

const TOKEN = 'ghp_NotARealTokenButSecret0123456789';
const SHA = 'a'.repeat(40);
const input = {
  repository: 'acme/widget',
  sha: SHA,
  context: 'conveyor/test',
  state: 'pending' as const,
  description: 'unit and integration running',
  targetUrl: 'http://localhost:8233/namespaces/default/workflows/pipeline%2Facme',
};

describe('reportCommitStatus', () => {
  let gh: FakeGithub;
  let lines: string[];
  const logger: StatusLogger = {
    info: (m, meta) => lines.push(JSON.stringify({ m, meta })),
    warn: (m, meta) => lines.push(JSON.stringify({ m, meta })),
  };
  const activities = (over: Partial<Parameters<typeof createGithubActivities>[0]> = {}) =>
    createGithubActivities({ apiUrl: gh.url, token: () => TOKEN, logger, ...over });

  beforeEach(async () => {
    gh = await startFakeGithub({ expectedToken: TOKEN });
    lines = [];
  });
  afterEach(async () => {
    await gh.close();
    // Whatever happened, the token is in no log line.
    expect(lines.join('\n')).not.toContain(TOKEN);
  });

  it('creates the status with the token and the JSON body GitHub expects', async () => {
    const result = await activities().reportCommitStatus(input);
    expect(result).toEqual({ reported: true });
    expect(gh.requests).toHaveLength(1);
    expect(gh.requests[0]).toMatchObject({
      method: 'POST',
      path: `/repos/acme/widget/statuses/${SHA}`,
      authScheme: 'token',
      tokenMatches: true,
      body: {
        state: 'pending',
        context: 'conveyor/test',
        description: 'unit and integration running',
        target_url: input.targetUrl,
      },
    });
  });

  it('keeps the description within GitHub’s 140 characters', async () => {
    await activities().reportCommitStatus({ ...input, description: 'x'.repeat(500) });
    expect((gh.requests[0].body as { description: string }).description).toHaveLength(140);
  });

  it('without a token reports nothing and sends nothing', async () => {
    for (const token of [undefined, '']) {
      const result = await activities({ token: () => token }).reportCommitStatus(input);
      expect(result).toEqual({ reported: false, reason: 'no token' });
    }
    expect(gh.requests).toHaveLength(0);
  });

  it('waits out 429 with retry-after, then reports', async () => {
    gh.failNext(2, { kind: '429', retryAfterSeconds: 1 });
    const t0 = Date.now();
    const result = await activities().reportCommitStatus(input);
    expect(result).toEqual({ reported: true });
    expect(gh.requests).toHaveLength(3);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
  });

  it('waits out a 403 with an exhausted x-ratelimit-remaining until x-ratelimit-reset', async () => {
    gh.failNext(1, { kind: '403-rate-limit', resetInSeconds: 1 });
    const result = await activities().reportCommitStatus(input);
    expect(result).toEqual({ reported: true });
    expect(gh.requests).toHaveLength(2);
    expect(gh.requests[1].at - gh.requests[0].at).toBeGreaterThanOrEqual(200);
  });

  it('waits out a secondary rate limit (403 with retry-after)', async () => {
    gh.failNext(1, { kind: '403-secondary', retryAfterSeconds: 0 });
    expect(await activities().reportCommitStatus(input)).toEqual({ reported: true });
    expect(gh.requests).toHaveLength(2);
  });

  it('gives up after a bounded number of attempts and does not throw', async () => {
    gh.failNext(10, { kind: '429', retryAfterSeconds: 0 });
    const result = await activities({ maxAttempts: 3 }).reportCommitStatus(input);
    expect(result.reported).toBe(false);
    expect(result.reason).toMatch(/rate limited by GitHub \(429\)/);
    expect(gh.requests).toHaveLength(3);
  });

  it('does not wait for a rate limit that lifts too late', async () => {
    gh.failNext(1, { kind: '403-rate-limit', resetInSeconds: 3600 });
    const t0 = Date.now();
    const result = await activities({ maxWaitMs: 5000 }).reportCommitStatus(input);
    expect(result.reported).toBe(false);
    expect(result.reason).toMatch(/rate limited by GitHub \(403\); not waiting \d+ s/);
    expect(gh.requests).toHaveLength(1);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('a rejected token is reported as such, without the token', async () => {
    const result = await activities({ token: () => `${TOKEN}-wrong` }).reportCommitStatus(input);
    expect(result).toEqual({ reported: false, reason: 'GitHub answered 401: the token was rejected' });
    expect(gh.requests).toHaveLength(1);
    expect(lines.join('\n')).not.toContain(`${TOKEN}-wrong`);
  });

  it('a refusal (404, 422) is not retried', async () => {
    gh.failNext(1, { kind: 'status', status: 404, message: 'Not Found' });
    expect(await activities().reportCommitStatus(input)).toEqual({
      reported: false,
      reason: 'GitHub answered 404: repository or commit not found, or the token cannot see it',
    });
    expect(gh.requests).toHaveLength(1);
  });

  it('retries a 502 from GitHub', async () => {
    gh.failNext(1, { kind: 'status', status: 502, message: 'Bad Gateway' });
    expect(await activities().reportCommitStatus(input)).toEqual({ reported: true });
    expect(gh.requests).toHaveLength(2);
  });

  it('an unreachable GitHub gives reported:false after bounded retries', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const result = await activities({ apiUrl: nowhere, maxAttempts: 2 }).reportCommitStatus(input);
    expect(result.reported).toBe(false);
    expect(result.reason).toMatch(/^GitHub unreachable: /);
  });

  it('refuses malformed input without a request', async () => {
    const api = activities();
    expect((await api.reportCommitStatus({ ...input, sha: 'abc' })).reason).toMatch(/^invalid input: sha/);
    expect((await api.reportCommitStatus({ ...input, repository: 'widget' })).reason).toMatch(/^invalid input/);
    expect((await api.reportCommitStatus({ ...input, state: 'done' as 'error' })).reason).toMatch(/^invalid input/);
    expect((await api.reportCommitStatus({ ...input, targetUrl: 'javascript:x' })).reason).toMatch(/^invalid/);
    expect(gh.requests).toHaveLength(0);
  });

  it('a token getter that throws still does not throw', async () => {
    const result = await activities({
      token: () => {
        throw new Error('vault sealed');
      },
    }).reportCommitStatus(input);
    expect(result).toEqual({ reported: false, reason: 'unexpected: vault sealed' });
  });

  it('uses the API base URL of GitHub Enterprise Server (path prefix)', async () => {
    const result = await activities({ apiUrl: `${gh.url}/api/v3/` }).reportCommitStatus(input);
    expect(result.reported).toBe(false); // the fake serves no /api/v3 prefix: 404
    expect(gh.requests[0].path).toBe(`/api/v3/repos/acme/widget/statuses/${SHA}`);
  });

  it('runs as an activity: cancellation ends a rate-limit wait with reported:false', async () => {
    gh.failNext(1, { kind: '429', retryAfterSeconds: 30 });
    // The activity's own logger (the default outside tests' injection) gets the lines.
    const sdkLogger = {
      log: (_level: string, m: string, meta?: Record<string, unknown>) => lines.push(JSON.stringify({ m, meta })),
      trace: () => undefined,
      debug: () => undefined,
      info: (m: string, meta?: Record<string, unknown>) => lines.push(JSON.stringify({ m, meta })),
      warn: (m: string, meta?: Record<string, unknown>) => lines.push(JSON.stringify({ m, meta })),
      error: () => undefined,
    };
    const env = new MockActivityEnvironment(undefined, { logger: sdkLogger });
    const { reportCommitStatus } = createGithubActivities({ apiUrl: gh.url, token: () => TOKEN });
    const running = env.run(reportCommitStatus, input);
    for (let i = 0; gh.requests.length === 0 && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
    expect(gh.requests).toHaveLength(1);
    const t0 = Date.now();
    env.cancel();
    expect(await running).toEqual({ reported: false, reason: 'cancelled' });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(lines.some((l) => l.includes('commit status not reported') && l.includes('cancelled'))).toBe(true);
  });
});
