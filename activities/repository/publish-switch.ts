// Steps 5–6 of a publish (publish-repository.ts): sign the new generation and switch to it. The
// signed files are written one at a time, in order. For APT the last of them, InRelease, is what
// clients read first: the switch is one object. For YUM it is two (repomd.xml, then its .asc),
// and a publisher that dies between them leaves dnf reading a bad signature until the retry; an
// .asc signing both generations would not help, as librepo checks only its first signature
// (README, Repositories, "Known gap"). Right before the first of them the caller's fence runs: a
// publisher whose lock lease has passed must not overwrite the index its successor may already
// have written.
import type { EngineDeps, IndexFile, ReleaseFacts, RepositoryFormat } from './publish-types';
import type { IndexRecord } from './repository-state';
import { recordOf } from './publish-upload';
import type { Environment } from './types';

export async function signAndSwitch(
  deps: EngineDeps,
  fmt: RepositoryFormat,
  files: IndexFile[],
  extra: Record<string, string[]>,
  generation: number,
  environment: Environment,
  uploaded: string[],
): Promise<IndexRecord[]> {
  deps.scope.heartbeat({ phase: 'sign', generation });
  const now = deps.now();
  const facts: ReleaseFacts = {
    generation,
    now,
    environment,
    validUntil: deps.validMs ? new Date(now.getTime() + deps.validMs) : undefined,
  };
  const signed = await fmt.signedFiles(files, extra, deps.signer, facts);
  deps.scope.checkCancelled();
  await deps.fence?.();
  for (const f of signed) {
    await deps.store.put(f.key, f.body, { contentType: f.contentType, immutable: false }, deps.scope.signal);
    uploaded.push(f.key);
  }
  return signed.map(recordOf);
}
