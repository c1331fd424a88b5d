// How a host is configured to read a published repository, the way apt and dnf expect it when
// several Conveyor repositories (projects) publish to one bucket and suite:
// - one apt source (one .list file) per repository URL and suite, and one yum .repo per baseurl:
//   every package deployed from there shares it, whichever project built it;
// - one keyring file per signing key, named after its fingerprint: two sources for one URL and
//   suite can never name two keyrings (apt refuses the whole source list then: "Conflicting values
//   set for option Signed-By").
// The names derive from the URL, suite and fingerprint only, never from a package, so every deploy
// to a host writes the same files with the same content, in any order.
//
// The key is read here, on the orchestrator, from the published key URL, and travels to the host
// as data (an environment value): the keyring file named after a fingerprint holds exactly that
// key. apt and dnf on the host still verify everything they read with it. During a key rotation
// the published file holds two keys: the keyring is then named after both fingerprints
// (`conveyor-<old>-<new>`), and the next deploy after the rotation ends replaces it.
import crypto from 'node:crypto';
import { publicKeyFingerprints } from '../repository/gpg';
import { FleetFailure, fleetFailure } from './failures';

/** The largest key block accepted (an RSA 4096 key with a few signatures is about 3 KB). */
const MAX_KEY_BYTES = 32 * 1024;
/** An armored public key block: printable ASCII lines only, so it is inert in a file and a shell value. */
const ARMORED_PUBLIC_KEY =
  /^-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n[\x20-\x7e\r\n]*\n-----END PGP PUBLIC KEY BLOCK-----\r?\n?$/;
const FINGERPRINT = /^[0-9A-F]{40}$|^[0-9A-F]{64}$/;
/** One fingerprint, or a rotation's two joined by `-`. */
const KEY_SET = /^([0-9A-F]{40}|[0-9A-F]{64})(-([0-9A-F]{40}|[0-9A-F]{64}))?$/;
const SOURCE_ID = /^conveyor-[A-Za-z0-9._-]{1,120}$/;

/** `conveyor-<url and suite, readable>-<hash>`: the name of the apt source (`<id>.list`) or the yum
 * repository (`[<id>]` in `<id>.repo`) for one repository URL (and apt suite). The readable part
 * keeps only characters both apt (file names in sources.list.d) and dnf (repository ids) accept;
 * the hash of the exact URL and suite keeps two URLs that read alike apart. */
export function sourceIdFor(url: string, suite?: string): string {
  const exact = suite === undefined ? url : `${url} ${suite}`;
  const readable = `${url.replace(/^https?:\/\//, '')}${suite === undefined ? '' : `_${suite}`}`
    .replace(/[^A-Za-z0-9.-]+/g, '_')
    .replace(/^[._-]+|[._-]+$/g, '')
    .slice(0, 90);
  const hash = crypto.createHash('sha256').update(exact).digest('hex').slice(0, 10);
  const id = `conveyor-${readable}-${hash}`;
  if (!SOURCE_ID.test(id)) {
    throw fleetFailure(FleetFailure.BadInput, `refused repository source name ${JSON.stringify(id)}`);
  }
  return id;
}

/** `conveyor-<fingerprint>`: the keyring file's name (`.asc` under /etc/apt/keyrings or
 * /etc/pki/rpm-gpg). */
export function keyringIdFor(fingerprint: string): string {
  if (!KEY_SET.test(fingerprint)) {
    throw fleetFailure(FleetFailure.BadInput, `refused key fingerprint ${JSON.stringify(fingerprint)}`);
  }
  return `conveyor-${fingerprint}`;
}

export interface RepositoryKey {
  armored: string;
  fingerprint: string;
}

/** Downloads the published public key and reads its fingerprint (two, joined by `-`, during a key
 * rotation). A key that cannot be downloaded, is not one armored public key block, or holds more
 * than two primary keys fails as RepositoryUnavailable
 * (retryable only when the server did not answer or answered 5xx). */
export async function fetchRepositoryKey(keyUrl: string, signal?: AbortSignal): Promise<RepositoryKey> {
  const unavailable = (why: string, retryable = false) =>
    fleetFailure(FleetFailure.RepositoryUnavailable, `cannot use the repository key ${keyUrl}: ${why}`, {
      retryable,
    });
  const timeout = AbortSignal.timeout(60_000);
  let res: Response;
  try {
    res = await fetch(keyUrl, {
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      redirect: 'error',
    });
  } catch (err) {
    signal?.throwIfAborted();
    throw unavailable(`download failed: ${(err as Error).message}`, true);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw unavailable(`HTTP ${res.status}`, res.status >= 500);
  }
  const bytes = Buffer.from(await res.arrayBuffer());
  if (bytes.length > MAX_KEY_BYTES) throw unavailable(`${bytes.length} bytes, more than a public key needs`);
  const armored = bytes.toString('latin1');
  if (!ARMORED_PUBLIC_KEY.test(armored)) throw unavailable('not an armored OpenPGP public key block');
  const fingerprints = await publicKeyFingerprints(armored, signal);
  if (fingerprints.length < 1 || fingerprints.length > 2 || !fingerprints.every((f) => FINGERPRINT.test(f))) {
    throw unavailable(`expected one public key (two during a key rotation), gpg found ${fingerprints.length}`);
  }
  return { armored: armored.endsWith('\n') ? armored : `${armored}\n`, fingerprint: fingerprints.join('-') };
}
