// classifyQueryError with every error shape a status query really ends in. Server answers are
// built the way grpc-js builds them (callErrorFromStatus: an Error with code, details and
// metadata) and wrapped the way @temporalio/client wraps them (ServiceError('Failed to query
// Workflow', { cause }), WorkflowNotFoundError, QueryNotRegisteredError); client-side shapes
// (no connection, deadline) come from a real client against a closed port.
import { Metadata, status } from '@grpc/grpc-js';
import {
  Client,
  Connection,
  QueryNotRegisteredError,
  ServiceError,
  WorkflowNotFoundError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { classifyQueryError } from '../../api/query-errors';
import { RunNotFoundError, TemporalTimeoutError } from '../../api/temporal-gate';

/** What grpc-js rejects a call with for a status from the server (or its own deadline). */
function grpcError(code: status, details: string): Error {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

/** What the client's query() throws for any gRPC status other than NOT_FOUND and INVALID_ARGUMENT. */
const queryFailed = (code: status, details: string) =>
  new ServiceError('Failed to query Workflow', { cause: grpcError(code, details) });

const CASES: [string, unknown, string][] = [
  // No worker answered, whichever clock ran out first.
  ['client deadline (DEADLINE_EXCEEDED)', queryFailed(status.DEADLINE_EXCEEDED, 'Deadline exceeded'), 'no-worker'],
  ['server context cancelled (CANCELLED)', queryFailed(status.CANCELLED, 'context canceled'), 'no-worker'],
  [
    'no poller (FAILED_PRECONDITION)',
    queryFailed(status.FAILED_PRECONDITION, 'no poller seen for task queue recently, worker may be down'),
    'no-worker',
  ],
  ["the API's own timer", new TemporalTimeoutError('status query', 1000), 'no-worker'],
  [
    'a WorkflowQueryTimeoutError-like shape',
    Object.assign(new Error('query timed out'), { name: 'WorkflowQueryTimeoutError' }),
    'no-worker',
  ],
  ['a "no worker" message', new Error('no worker polls task queue conveyor'), 'no-worker'],
  [
    'an update RPC timeout',
    new WorkflowUpdateRPCTimeoutOrCancelledError('timeout', { cause: grpcError(status.DEADLINE_EXCEEDED, 'x') }),
    'no-worker',
  ],
  // Not found.
  [
    'WorkflowNotFoundError',
    new WorkflowNotFoundError('workflow not found', 'pipeline/a/b/main/x', undefined),
    'not-found',
  ],
  [
    'QueryNotRegisteredError',
    new QueryNotRegisteredError('unknown queryType status', status.INVALID_ARGUMENT),
    'not-found',
  ],
  ['RunNotFoundError', new RunNotFoundError('no run pipeline/a/b/main/x'), 'not-found'],
  ['a raw NOT_FOUND', queryFailed(status.NOT_FOUND, 'workflow not found'), 'not-found'],
  // The server could not be reached.
  [
    'UNAVAILABLE',
    queryFailed(status.UNAVAILABLE, 'No connection established. Last error: Error: connect ECONNREFUSED'),
    'unreachable',
  ],
  [
    'ECONNREFUSED',
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:7233'), { code: 'ECONNREFUSED' }),
    'unreachable',
  ],
  [
    'connect failure wrapped',
    new ServiceError('Failed to connect to Temporal server', { cause: new Error('socket hang up') }),
    'unreachable',
  ],
  // Anything else is not ours to guess.
  ['PERMISSION_DENIED', queryFailed(status.PERMISSION_DENIED, 'Request unauthorized.'), 'other'],
  ['FAILED_PRECONDITION of another kind', queryFailed(status.FAILED_PRECONDITION, 'namespace is not active'), 'other'],
  ['a plain error', new Error('boom'), 'other'],
  ['not an error at all', 'boom', 'other'],
  ['undefined', undefined, 'other'],
];

describe('classifyQueryError', () => {
  it.each(CASES.map(([what, err, expected]) => [what, expected, err]))('%s → %s', (_what, expected, err) => {
    expect(classifyQueryError(err)).toBe(expected);
  });

  it('does not loop on a cause cycle', () => {
    const a = new Error('a') as Error & { cause?: unknown };
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect(classifyQueryError(a)).toBe('other');
  });

  describe('errors a real client throws (closed port, no server needed)', () => {
    let connection: Connection;
    let client: Client;
    const id = 'pipeline/acme/widget/main/' + '0'.repeat(40);
    afterEach(async () => {
      await connection?.close();
    });

    it('no connection, no retries: UNAVAILABLE → unreachable', async () => {
      connection = Connection.lazy({ address: '127.0.0.1:1', interceptors: [] });
      client = new Client({ connection });
      const err = await client.workflow
        .getHandle(id)
        .query('status')
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ServiceError);
      expect((err as ServiceError).cause).toMatchObject({ code: status.UNAVAILABLE });
      expect(classifyQueryError(err)).toBe('unreachable');
    });

    it('a deadline that runs out while the SDK retries: DEADLINE_EXCEEDED → no-worker (describe tells the rest)', async () => {
      connection = Connection.lazy({ address: '127.0.0.1:1' });
      client = new Client({ connection });
      const err = await client
        .withDeadline(Date.now() + 300, () => client.workflow.getHandle(id).query('status'))
        .catch((e: unknown) => e);
      expect((err as ServiceError).cause).toMatchObject({ code: status.DEADLINE_EXCEEDED });
      expect(classifyQueryError(err)).toBe('no-worker');
    });
  });
});
