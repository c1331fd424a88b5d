// Slack's request signing (https://api.slack.com/authentication/verifying-requests-from-slack):
// X-Slack-Signature is `v0=` + hex HMAC-SHA256 of `v0:<X-Slack-Request-Timestamp>:<raw body>`
// under the app's signing secret. A request older (or newer) than five minutes is refused, so a
// captured request cannot be replayed later; the comparison takes the same time for every wrong
// signature of the right length.
import crypto from 'node:crypto';

/** Slack's replay window. */
export const MAX_AGE_SECONDS = 5 * 60;

export interface SlackSignatureInput {
  secret: string;
  /** X-Slack-Request-Timestamp: seconds since the epoch. */
  timestamp: string | undefined;
  /** X-Slack-Signature. */
  signature: string | undefined;
  /** The body exactly as received. */
  body: Buffer;
  /** Seconds since the epoch (tests pass their own clock). */
  now?: number;
}

export type SignatureVerdict = { ok: true } | { ok: false; reason: string };

/** What can be refused before the body is read: missing or malformed headers, a stale timestamp. */
export function checkSlackHeaders(
  timestamp: string | undefined,
  signature: string | undefined,
  now = Math.floor(Date.now() / 1000),
): SignatureVerdict {
  if (!timestamp || !signature) {
    return { ok: false, reason: 'missing X-Slack-Request-Timestamp or X-Slack-Signature: only Slack may call this' };
  }
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'malformed X-Slack-Request-Timestamp' };
  if (Math.abs(now - Number(timestamp)) > MAX_AGE_SECONDS) {
    return {
      ok: false,
      reason: `request timestamp is more than ${MAX_AGE_SECONDS / 60} minutes from this server's clock: refused as a possible replay`,
    };
  }
  if (!/^v0=[0-9a-f]{64}$/.test(signature)) return { ok: false, reason: 'malformed X-Slack-Signature' };
  return { ok: true };
}

export function verifySlackSignature(input: SlackSignatureInput): SignatureVerdict {
  const { timestamp, signature } = input;
  const headers = checkSlackHeaders(timestamp, signature, input.now);
  if (!headers.ok || !timestamp || !signature) return headers;
  const expected = slackSignature(input.secret, timestamp, input.body);
  const ok = crypto.timingSafeEqual(Buffer.from(expected, 'utf8'), Buffer.from(signature, 'utf8'));
  return ok ? { ok: true } : { ok: false, reason: 'signature does not match: check chat.slack.signingSecretEnv' };
}

/** `v0=<hex>` for a body: what Slack sends (tests sign their requests with it). */
export function slackSignature(secret: string, timestamp: string, body: Buffer | string): string {
  const mac = crypto.createHmac('sha256', secret);
  mac.update(`v0:${timestamp}:`);
  mac.update(body);
  return `v0=${mac.digest('hex')}`;
}
