// What a failed workflow query means, decided from the error alone. A query is the one call that
// needs a worker: Temporal holds it until the workflow's worker answers, so "no answer" comes back
// in many shapes depending on which clock ran out first — our own timer (TemporalTimeoutError),
// the client's gRPC deadline (DEADLINE_EXCEEDED), the server's context being cancelled as that
// deadline reaches it (CANCELLED), or the server's "no poller seen for task queue recently"
// (FAILED_PRECONDITION). All of them mean "no worker answered" (504), not "Temporal is down":
// taking CANCELLED for an outage is what made `GET /runs` flip between 504 and 503 under load.
// Only UNAVAILABLE and connection failures mean the server itself could not be reached (503).
//
// The @temporalio/client wraps the gRPC error of a query in `ServiceError('Failed to query
// Workflow', { cause })`, turns NOT_FOUND into WorkflowNotFoundError and INVALID_ARGUMENT into
// QueryNotRegisteredError, so the cause chain is walked. Kept free of I/O and of class identity
// (names and codes only), so the CLI and the API agree and every shape is a unit test.

export type QueryErrorClass = 'no-worker' | 'not-found' | 'unreachable' | 'other';

// gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html); fixed by the spec.
const CANCELLED = 1;
const DEADLINE_EXCEEDED = 4;
const NOT_FOUND = 5;
const FAILED_PRECONDITION = 9;
const UNAVAILABLE = 14;

/** Socket-level failures: the server was never reached, or the connection broke. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ETIMEDOUT',
]);

/** The error names that mean "no worker answered in time", from this API and from SDKs. */
const NO_ANSWER_NAMES = new Set(['TemporalTimeoutError', 'WorkflowQueryTimeoutError', 'QueryTimeoutError']);
const NOT_FOUND_NAMES = new Set(['WorkflowNotFoundError', 'QueryNotRegisteredError', 'RunNotFoundError']);

const NO_WORKER_TEXT = /no poller|no worker|worker may be down|query.*timed? ?out/i;
const CONNECTION_TEXT = /ECONNREFUSED|failed to connect|no connection established|connection (refused|reset|closed)/i;

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  details?: unknown;
  cause?: unknown;
}

/** The error and its causes, outermost first (bounded: a cause chain can loop). */
function chain(err: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  let e: unknown = err;
  while (e && typeof e === 'object' && out.length < 8 && !out.includes(e)) {
    out.push(e);
    e = (e as ErrorLike).cause;
  }
  return out;
}

/** A gRPC status as grpc-js builds it: numeric `code`, string `details`. */
function grpcCode(e: ErrorLike): number | undefined {
  return typeof e.code === 'number' && typeof e.details === 'string' ? e.code : undefined;
}

export function classifyQueryError(err: unknown): QueryErrorClass {
  for (const e of chain(err)) {
    const name = typeof e.name === 'string' ? e.name : '';
    const text = `${typeof e.message === 'string' ? e.message : ''} ${typeof e.details === 'string' ? e.details : ''}`;
    if (NOT_FOUND_NAMES.has(name)) return 'not-found';
    if (NO_ANSWER_NAMES.has(name)) return 'no-worker';
    const code = grpcCode(e);
    if (code !== undefined) {
      if (code === NOT_FOUND) return 'not-found';
      if (code === CANCELLED || code === DEADLINE_EXCEEDED) return 'no-worker';
      if (code === FAILED_PRECONDITION && NO_WORKER_TEXT.test(text)) return 'no-worker';
      if (code === UNAVAILABLE) return 'unreachable';
      return 'other';
    }
    if (typeof e.code === 'string' && CONNECTION_CODES.has(e.code)) return 'unreachable';
    if (CONNECTION_TEXT.test(text)) return 'unreachable';
    if (NO_WORKER_TEXT.test(text)) return 'no-worker';
  }
  return 'other';
}
