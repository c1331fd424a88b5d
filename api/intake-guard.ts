// Bounds what unauthenticated senders can make the webhook listener hold: open connections, and
// request body bytes buffered before their signature is checked (one budget across all requests,
// since the per-request limit alone lets a thousand 25 MB bodies in at once). Timeouts (Node's
// headersTimeout / requestTimeout, set in server.ts) drop slow senders eventually; this module
// keeps memory bounded until they do.
//
// When a limit is reached the OLDEST unverified holder is dropped, not the newcomer: GitHub
// sends a delivery in one go within milliseconds, so a connection or body that has been open
// longest is the likeliest slow sender, and refusing newcomers would let a few slow senders
// lock real deliveries out until their timeouts. A connection's age counts from its last sign of
// life as HTTP (connected, a request's headers complete, an answer written), so a client that
// reuses a connection is as young as its request. A request whose signature has been verified is
// never dropped: it holds no budget any more and its answer is in progress.
import type http from 'node:http';
import type { Socket } from 'node:net';

export interface IntakeLimits {
  maxConnections: number;
  maxBufferedBytes: number;
}

export type DropReason = 'connection_limit' | 'buffer_limit';

export interface IntakeStats {
  connections: number;
  bufferedBytes: number;
  dropped: Record<DropReason, number>;
}

export interface IntakeGuard {
  /** Accounts `bytes` more of `req`'s body; drops older unverified bodies to make room. False
   * when it cannot fit even then (the body alone exceeds the budget). */
  reserve(req: http.IncomingMessage, bytes: number): boolean;
  /** The body is no longer held unverified (signature checked, or refused): its bytes are free. */
  release(req: http.IncomingMessage): void;
  /** The request is authenticated: its connection is not dropped until its answer is written. */
  protect(req: http.IncomingMessage, res: http.ServerResponse): void;
  stats(): IntakeStats;
}

interface Conn {
  /** Requests on it that are authenticated and not yet answered. */
  protected: number;
}

export function createIntakeGuard(server: http.Server, limits: IntakeLimits): IntakeGuard {
  // Maps iterate in insertion order: the first entries are the oldest.
  const conns = new Map<Socket, Conn>();
  const bodies = new Map<http.IncomingMessage, number>();
  let buffered = 0;
  const dropped: Record<DropReason, number> = { connection_limit: 0, buffer_limit: 0 };

  function drop(socket: Socket, reason: DropReason): void {
    dropped[reason] += 1;
    conns.delete(socket); // now, not at its 'close' event: the count must never pass the cap
    socket.destroy();
  }

  /** Makes the connection the youngest: Map order is age order. */
  function touch(socket: Socket): void {
    const conn = conns.get(socket);
    if (!conn) return;
    conns.delete(socket);
    conns.set(socket, conn);
  }

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    touch(req.socket);
    res.once('finish', () => touch(req.socket));
  });

  server.on('connection', (socket: Socket) => {
    conns.set(socket, { protected: 0 });
    socket.once('close', () => conns.delete(socket));
    if (conns.size <= limits.maxConnections) return;
    for (const [s, c] of conns) {
      if (s !== socket && c.protected === 0) return drop(s, 'connection_limit');
    }
    drop(socket, 'connection_limit'); // every other connection carries a verified delivery
  });

  function release(req: http.IncomingMessage): void {
    const held = bodies.get(req);
    if (held === undefined) return;
    bodies.delete(req);
    buffered -= held;
  }

  return {
    reserve(req, bytes) {
      if (!bodies.has(req)) {
        bodies.set(req, 0);
        req.once('close', () => release(req));
      }
      if (bytes > limits.maxBufferedBytes) return false;
      for (const [other] of bodies) {
        if (buffered + bytes <= limits.maxBufferedBytes) break;
        if (other === req) continue;
        release(other);
        drop(other.socket, 'buffer_limit');
      }
      if (buffered + bytes > limits.maxBufferedBytes) return false;
      bodies.set(req, (bodies.get(req) ?? 0) + bytes);
      buffered += bytes;
      return true;
    },
    release,
    protect(req, res) {
      const conn = conns.get(req.socket);
      if (!conn) return;
      conn.protected += 1;
      res.once('close', () => (conn.protected -= 1));
    },
    stats() {
      return { connections: conns.size, bufferedBytes: buffered, dropped: { ...dropped } };
    },
  };
}
