// The log pipeline without a worker: secrets censored by key and scrubbed by value (also inside
// messages and JSON-escaped), pino-pretty on request, and the stage/distro/host fields an activity
// line gets from its workflow ID and input.
import { PassThrough } from 'node:stream';
import { parseStageId } from '../../common/ids';
import { activityLogFields } from '../../workers/activity-context';
import { createLogger, registerSecretValues, wantsPretty } from '../../workers/logging';

function capture(pretty: boolean, env: NodeJS.ProcessEnv = {}) {
  const out = new PassThrough();
  const chunks: string[] = [];
  out.on('data', (d: Buffer) => chunks.push(d.toString('utf8')));
  const logger = createLogger('test', { pretty, destination: out, env: { CONVEYOR_LOG_LEVEL: 'info', ...env } });
  return { logger, text: () => chunks.join('') };
}

describe('logging', () => {
  it('censors secret keys and scrubs secret values, wherever they appear in a line', () => {
    const token = 'ghp_0123456789abcdefTOKEN';
    const { logger, text } = capture(false, { ACME_GITHUB_TOKEN: token, PLAIN: 'not-a-secret-value' });
    registerSecretValues(['s3cr3t-"quoted"-value']);
    logger.info({ token: 'raw-token-field', headers: { authorization: 'Bearer abc' } }, 'keys');
    logger.warn({ err: new Error(`git push failed: https://x-access-token:${token}@github.com`) }, `saw ${token}`);
    logger.info({ detail: 's3cr3t-"quoted"-value' }, 'escaped');
    logger.info({ note: 'not-a-secret-value' }, 'plain');
    const lines = text().trim().split('\n');
    expect(lines).toHaveLength(4);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed[0]).toMatchObject({ token: '[redacted]', headers: { authorization: '[redacted]' } });
    expect(parsed[1].msg).toBe('saw [redacted]');
    expect(JSON.stringify(parsed[1].err)).toContain('x-access-token:[redacted]@github.com');
    expect(parsed[2].detail).toBe('[redacted]');
    expect(text()).not.toContain(token);
    expect(text()).not.toContain('raw-token-field');
    expect(text()).not.toContain('s3cr3t');
    // Only secrets: other values stay.
    expect(parsed[3].note).toBe('not-a-secret-value');
  });

  it('writes pretty lines for people, JSON otherwise', () => {
    const { logger, text } = capture(true);
    logger.info({ workflowId: 'pipeline/a/b/main/x', stage: 'test' }, 'running step');
    expect(text()).not.toMatch(/^\{/);
    expect(text()).toMatch(/INFO.*running step/);
    expect(text()).toMatch(/stage: "test"/);
    expect(wantsPretty({ CONVEYOR_LOG_PRETTY: '1' }, false)).toBe(true);
    expect(wantsPretty({ CONVEYOR_LOG_PRETTY: '0' }, true)).toBe(false);
    expect(wantsPretty({}, true)).toBe(true);
    expect(wantsPretty({}, false)).toBe(false);
  });

  it('finds stage, distro and host for activity lines', () => {
    const sha = 'a'.repeat(40);
    const p = `pipeline/acme/widget/feature/x/${sha}`;
    expect(parseStageId(`${p}/deploy/el9#2`)).toEqual({ pipelineId: p, stage: 'deploy', distro: 'el9' });
    expect(parseStageId(`${p}/test`)).toEqual({ pipelineId: p, stage: 'test' });
    expect(parseStageId(`${p}/package/docs#rerun-17`)).toEqual({ pipelineId: p, stage: 'package', distro: 'docs' });
    expect(parseStageId(p)).toBeUndefined();
    expect(parseStageId('branch-state/acme/widget/main')).toBeUndefined();
    expect(activityLogFields(`${p}/deploy/el9`, { host: { name: 'web-1', instanceId: 'i-1' } })).toEqual({
      stage: 'deploy',
      distro: 'el9',
      host: 'web-1',
    });
    expect(activityLogFields(`${p}/test`, { stage: 'test', env: { CONVEYOR_DISTRO: 'bookworm' } })).toEqual({
      stage: 'test',
      distro: 'bookworm',
    });
    expect(activityLogFields('repo-lock/b/unstable', undefined)).toEqual({});
  });
});
