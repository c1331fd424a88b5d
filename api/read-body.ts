// Bounded body reader: the signature is verified over these exact bytes, and a body over the limit
// is refused as soon as the limit is crossed (Content-Length first), never buffered whole. Every
// chunk is accounted against the listener's global budget of unverified bytes (intake-guard.ts)
// before it is kept; the caller releases the body once its signature has been checked.
import type { IncomingMessage } from 'node:http';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Accounts for body bytes held before their signature is checked (intake-guard.ts). */
export interface BodyBudget {
  reserve(req: IncomingMessage, bytes: number): boolean;
}

const UNLIMITED: BodyBudget = { reserve: () => true };

export function readBody(req: IncomingMessage, limit: number, budget: BodyBudget = UNLIMITED): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new HttpError(413, `body of ${declared} bytes is over the limit of ${limit}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (err: HttpError) => {
      req.off('data', onData);
      req.pause();
      reject(err);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) return stop(new HttpError(413, `body is over the limit of ${limit} bytes`));
      if (!budget.reserve(req, c.length)) {
        return stop(
          new HttpError(
            503,
            'too many request bodies are being received at once; redeliver this delivery from GitHub in a moment',
          ),
        );
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    // The client went away mid-body, the server's request timeout cut it off, or the intake guard
    // dropped the connection: nobody is left to answer, the promise only has to settle.
    req.once('error', (err) => reject(new HttpError(400, `request body not received: ${err.message}`)));
    req.once('close', () => {
      if (!req.complete) reject(new HttpError(400, 'request body not received: the connection closed'));
    });
  });
}
