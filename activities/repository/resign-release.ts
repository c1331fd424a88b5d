// Re-signing an APT suite before its Release expires. A Release with `Valid-Until` is refused by
// apt once that time has passed ("is expired"), which is the point: a frozen mirror or a replayed
// old index cannot keep clients on old packages. So a channel nobody publishes to must still be
// signed again within the validity period: this re-signs the live Release in place (the same
// files and sums, a new Date and Valid-Until), under the same publish lock as a publish (the
// caller holds it; `fence` runs before the switch), and records the new signed files in the
// state. Only what the state says is live is re-signed: a Release that differs from the state's
// record is not ours to vouch for (a publish repairs it). YUM has nothing to renew (repomd.xml
// carries no expiry), so the schedule leaves it out; `conveyor keys rotate` re-signs both formats
// with the configured key set (`keys` option): the same repomd.xml, a new repomd.xml.asc. The
// public keys go up first, so a client that fetches them can verify the new signatures.
import { RepositoryFailure, nonRetryable } from './failures';
import { releaseDate, signRelease } from './apt-format';
import type { EngineDeps, RepositoryFormat } from './publish-types';
import { keySetOf, publishPublicKeys } from './publish-repository';
import { recordOf } from './publish-upload';
import { parseStored } from './state-shards';
import { sha256Hex } from './s3-objects';
import type { ResignResult } from './types';

/** `text` with its Date set to `now` and Valid-Until to `validUntil` (removed when undefined). */
export function redate(text: string, now: Date, validUntil: Date | undefined): string {
  const lines = text.split('\n').filter((l) => !l.startsWith('Valid-Until:'));
  const at = lines.findIndex((l) => l.startsWith('Date:'));
  if (at < 0) throw new Error('the Release has no Date field');
  lines[at] = `Date: ${releaseDate(now)}`;
  if (validUntil) lines.splice(at + 1, 0, `Valid-Until: ${releaseDate(validUntil)}`);
  return lines.join('\n');
}

export async function resignRelease(
  deps: Pick<EngineDeps, 'store' | 'signer' | 'scope' | 'now' | 'validMs' | 'fence'>,
  fmt: RepositoryFormat,
  opts: { keys?: boolean } = {},
): Promise<ResignResult> {
  const { store, scope } = deps;
  const signal = scope.signal;
  if (fmt.format !== 'apt' && !opts.keys) return { resigned: false, keys: [] };
  const bytes = await store.get(fmt.stateKey, signal);
  if (!bytes) return { resigned: false, keys: [] };
  // Only the head changes (schema 2; a schema 1 state is rewritten whole, as before): the shards
  // name the packages, which a re-sign leaves alone.
  const state = parseStored(bytes, store.url(fmt.stateKey), fmt.format);
  const releaseKey = fmt.signedKeys[0];
  const recorded = state.signed.find((r) => r.key === releaseKey);
  const live = await store.get(releaseKey, signal);
  if (!recorded || !live || sha256Hex(live) !== recorded.sha256) {
    throw nonRetryable(
      RepositoryFailure.StateMissing,
      `${store.url(releaseKey)} is ${live ? 'not the Release the state records' : 'missing'}: ` +
        'refusing to re-sign what the state does not vouch for; publish to the channel to repair it',
      { key: releaseKey },
    );
  }
  const now = deps.now();
  const validUntil = fmt.format === 'apt' && deps.validMs ? new Date(now.getTime() + deps.validMs) : undefined;
  scope.heartbeat({ phase: 'sign', generation: state.generation });
  const files =
    fmt.format === 'apt'
      ? await signRelease(Buffer.from(redate(live.toString('utf8'), now, validUntil)), deps.signer, fmt.signedKeys)
      : [
          { key: releaseKey, body: live, contentType: 'application/xml', hashed: false },
          {
            key: fmt.signedKeys[1],
            body: Buffer.from(await deps.signer.detachSign(live)),
            contentType: 'application/pgp-signature',
            hashed: false,
          },
        ];
  scope.checkCancelled();
  await deps.fence?.();
  await publishPublicKeys(deps);
  for (const f of files) {
    await store.put(f.key, f.body, { contentType: f.contentType, immutable: false }, signal);
  }
  const next = {
    ...state,
    signer: keySetOf(deps.signer),
    signed: files.map(recordOf),
    publishedAt: now.toISOString(),
  };
  await store.put(
    fmt.stateKey,
    Buffer.from(JSON.stringify(next, null, 1)),
    { contentType: 'application/json', immutable: false },
    signal,
  );
  scope.info('release re-signed', {
    suite: fmt.suite ?? fmt.repoUrlPath,
    signers: keySetOf(deps.signer),
    generation: state.generation,
    validUntil: validUntil?.toISOString(),
  });
  return { resigned: true, validUntil: validUntil?.toISOString(), keys: files.map((f) => f.key) };
}
