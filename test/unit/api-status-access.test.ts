// The pieces behind GET /runs and /metrics: the bearer token check (constant time, exact match)
// and the summary of what the Temporal server knows of a run when no worker answers.
import { msNumberToTs } from '@temporalio/common/lib/time';
import { bearerTokenMatches } from '../../api/bearer-token';
import { runSummary, type DescribeResult } from '../../api/run-summary';

describe('bearer token', () => {
  const token = 'a3f1c2d4e5b6a7980123456789abcdef';
  it.each([
    [`Bearer ${token}`, true],
    [`bearer ${token}`, true],
    [`Bearer  ${token} `, true],
    [`Bearer ${token}x`, false],
    [`Bearer ${token.slice(0, -1)}`, false],
    [`Basic ${token}`, false],
    [token, false],
    ['Bearer ', false],
    ['', false],
    [undefined, false],
  ])('%j → %s', (header, expected) => {
    expect(bearerTokenMatches(header, token)).toBe(expected);
  });

  it('never matches an empty token, even against an empty header', () => {
    expect(bearerTokenMatches('Bearer ', '')).toBe(false);
    expect(bearerTokenMatches(undefined, '')).toBe(false);
  });
});

describe('runSummary', () => {
  const t = (iso: string) => msNumberToTs(Date.parse(iso));
  const pipeline: DescribeResult = {
    workflowId: 'pipeline/acme/widget/main/' + 'a'.repeat(40),
    runId: 'run-1',
    type: 'pipeline',
    taskQueue: 'conveyor',
    status: { code: 1, name: 'RUNNING' },
    startTime: new Date('2026-12-01T10:00:00Z'),
    historyLength: 42,
    memo: { commitMessage: 'fix', author: 'alice', deliveryId: 'd-1' },
    typedSearchAttributes: {
      getAll: () =>
        [
          { key: { name: 'ConveyorStatus', type: 'KEYWORD' }, value: 'running' },
          { key: { name: 'ConveyorStage', type: 'KEYWORD' }, value: 'package' },
          { key: { name: 'ConveyorBuild', type: 'INT' }, value: 7 },
        ] as never,
    },
    raw: {
      pendingActivities: [],
      pendingChildren: [
        { workflowId: 'pipeline/acme/widget/main/aaa/package/bookworm', workflowTypeName: 'packageStage' },
      ],
    },
  };
  const child: DescribeResult = {
    ...pipeline,
    workflowId: 'pipeline/acme/widget/main/aaa/package/bookworm',
    type: 'packageStage',
    typedSearchAttributes: { getAll: () => [] },
    raw: {
      pendingActivities: [
        {
          activityId: '1',
          activityType: { name: 'buildPackage' },
          state: 2,
          attempt: 3,
          maximumAttempts: 5,
          scheduledTime: t('2026-12-01T10:01:00Z'),
          lastStartedTime: t('2026-12-01T10:02:00Z'),
          lastWorkerIdentity: 'builder@host',
          lastFailure: {
            message: 'make package exited 2',
            applicationFailureInfo: { type: 'CommandFailed' },
            cause: { message: 'dpkg-deb: error' },
          },
        },
      ],
    },
  };

  it('shows status, search attributes, memo, children and the pending activities of the run and its children', () => {
    expect(runSummary(pipeline, [child])).toEqual({
      workflowId: pipeline.workflowId,
      runId: 'run-1',
      type: 'pipeline',
      taskQueue: 'conveyor',
      status: 'RUNNING',
      startTime: '2026-12-01T10:00:00.000Z',
      historyLength: 42,
      searchAttributes: { ConveyorStatus: 'running', ConveyorStage: 'package', ConveyorBuild: 7 },
      memo: { commitMessage: 'fix', author: 'alice', deliveryId: 'd-1' },
      pendingChildren: [{ workflowId: 'pipeline/acme/widget/main/aaa/package/bookworm', type: 'packageStage' }],
      pendingActivities: [
        {
          workflowId: 'pipeline/acme/widget/main/aaa/package/bookworm',
          activityId: '1',
          activityType: 'buildPackage',
          state: 'STARTED',
          attempt: 3,
          maximumAttempts: 5,
          scheduledTime: '2026-12-01T10:01:00.000Z',
          lastStartedTime: '2026-12-01T10:02:00.000Z',
          lastWorkerIdentity: 'builder@host',
          lastFailure: { message: 'make package exited 2', type: 'CommandFailed', cause: 'dpkg-deb: error' },
        },
      ],
    });
  });

  it('a closed run without anything pending', () => {
    const closed = runSummary({
      ...pipeline,
      status: { code: 2, name: 'COMPLETED' },
      closeTime: new Date('2026-12-01T11:00:00Z'),
      raw: {},
    });
    expect(closed).toMatchObject({ status: 'COMPLETED', closeTime: '2026-12-01T11:00:00.000Z' });
    expect(closed.pendingActivities).toEqual([]);
    expect(closed.pendingChildren).toEqual([]);
  });
});
