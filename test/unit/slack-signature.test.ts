// Slack's request signing, checked against the example in Slack's own documentation
// (https://api.slack.com/authentication/verifying-requests-from-slack) and against tampering.
import { checkSlackHeaders, slackSignature, verifySlackSignature } from '../../api/slack/verify-signature';

// Slack's documented example: this secret, timestamp and body give this signature.
const DOC = {
  secret: '8f742231b10e8888abcd99yyyzzz85a5',
  timestamp: '1531420618',
  body: Buffer.from(
    'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c',
  ),
  signature: 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
};

describe('verifySlackSignature', () => {
  it("accepts Slack's documented example within five minutes of its timestamp", () => {
    expect(slackSignature(DOC.secret, DOC.timestamp, DOC.body)).toBe(DOC.signature);
    expect(verifySlackSignature({ ...DOC, now: Number(DOC.timestamp) + 299 })).toEqual({ ok: true });
    expect(verifySlackSignature({ ...DOC, now: Number(DOC.timestamp) - 299 })).toEqual({ ok: true });
  });

  it('refuses a timestamp more than five minutes off, even with a valid signature (replay)', () => {
    for (const now of [Number(DOC.timestamp) + 301, Number(DOC.timestamp) - 301]) {
      const v = verifySlackSignature({ ...DOC, now });
      expect(v).toEqual({ ok: false, reason: expect.stringContaining('more than 5 minutes') });
    }
  });

  it('refuses a changed body, a changed timestamp, another secret and a flipped signature digit', () => {
    const now = Number(DOC.timestamp);
    const tampered = Buffer.from(DOC.body.toString().replace('text=', 'text=approve'));
    const cases = [
      { ...DOC, body: tampered },
      { ...DOC, timestamp: String(now + 1) },
      { ...DOC, secret: DOC.secret.replace('8f', '9f') },
      { ...DOC, signature: DOC.signature.slice(0, -1) + (DOC.signature.endsWith('3') ? '4' : '3') },
    ];
    for (const c of cases) {
      expect(verifySlackSignature({ ...c, now })).toEqual({
        ok: false,
        reason: 'signature does not match: check chat.slack.signingSecretEnv',
      });
    }
  });

  it('refuses missing and malformed headers before any HMAC is computed', () => {
    const now = Number(DOC.timestamp);
    expect(checkSlackHeaders(undefined, DOC.signature, now)).toMatchObject({ ok: false, reason: /missing/ });
    expect(checkSlackHeaders(DOC.timestamp, undefined, now)).toMatchObject({ ok: false, reason: /missing/ });
    expect(checkSlackHeaders('12a', DOC.signature, now)).toEqual({
      ok: false,
      reason: 'malformed X-Slack-Request-Timestamp',
    });
    for (const sig of ['v1=' + 'a'.repeat(64), 'v0=' + 'A'.repeat(64), 'v0=' + 'a'.repeat(63), 'sha256=abc']) {
      expect(checkSlackHeaders(DOC.timestamp, sig, now)).toEqual({ ok: false, reason: 'malformed X-Slack-Signature' });
    }
    expect(checkSlackHeaders(DOC.timestamp, DOC.signature, now)).toEqual({ ok: true });
  });
});
