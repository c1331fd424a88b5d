// Every inner timeout is shorter than its activity's start-to-close: an SSM execution started by
// an activity ends two minutes before the activity's deadline, whatever the caller asked for.
import { MockActivityEnvironment } from '@temporalio/testing';
import { executionTimeoutSeconds } from '../../activities/fleet/ssm-executor';

describe('SSM execution timeout', () => {
  it("ends two minutes before the activity's start-to-close", async () => {
    const now = Date.now();
    const env = new MockActivityEnvironment({
      startToCloseTimeoutMs: 30 * 60_000,
      currentAttemptScheduledTimestampMs: now,
    });
    // No timeout asked: SSM's default hour would outlive the 30-minute activity.
    expect(await env.run(() => Promise.resolve(executionTimeoutSeconds(undefined, now)))).toBe(28 * 60);
    // A shorter timeout asked: kept.
    expect(await env.run(() => Promise.resolve(executionTimeoutSeconds(600_000, now)))).toBe(600);
    // Late in the attempt: what is left, less the margin.
    expect(await env.run(() => Promise.resolve(executionTimeoutSeconds(undefined, now + 20 * 60_000)))).toBe(8 * 60);
  });

  it('outside an activity keeps what was asked (or the hour)', () => {
    expect(executionTimeoutSeconds(undefined)).toBe(3600);
    expect(executionTimeoutSeconds(90_000)).toBe(90);
  });
});
