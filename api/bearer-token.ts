// The bearer token that guards /runs and /metrics (config api.statusTokenEnv names the env var
// holding it). Compared in constant time: both sides are hashed first, so neither the token's
// length nor the position of the first wrong byte shows in the answer's timing.
import crypto from 'node:crypto';

const digest = (s: string) => crypto.createHash('sha256').update(s, 'utf8').digest();

/** True when an `Authorization` header carries exactly `Bearer <token>` (scheme case-insensitive, RFC 6750). */
export function bearerTokenMatches(authorization: string | undefined, token: string): boolean {
  const m = /^Bearer +(\S+) *$/i.exec(authorization ?? '');
  const given = m ? m[1] : '';
  // Always compare, also for a missing header, so that path takes no measurably different time.
  const equal = crypto.timingSafeEqual(digest(given), digest(token));
  return equal && m !== null && token.length > 0;
}
