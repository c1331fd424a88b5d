// OpenSSH known_hosts checking for the ssh executor, as `StrictHostKeyChecking yes` does it: a host
// whose key is not listed is refused (never trusted on first use: an upgrade runs as root), a
// host listed with other keys is refused loudly (a changed key is a reinstalled host or someone in
// the middle), a key marked @revoked is refused. Hashed names (`|1|salt|hash`, HashKnownHosts),
// comma lists, `*`/`?` wildcards, `!` negations and `[host]:port` names are understood;
// @cert-authority lines are not used (host certificates are not supported).
import crypto from 'node:crypto';

export type HostKeyVerdict = { ok: true } | { ok: false; kind: 'unknown' | 'changed' | 'revoked'; message: string };

/** The name known_hosts lists a host under: `host` on port 22, `[host]:port` elsewhere. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

export function fingerprint(key: Buffer): string {
  return `SHA256:${crypto.createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …). */
export function keyType(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const len = key.readUInt32BE(0);
  return len > 0 && len < 64 && key.length >= 4 + len ? key.subarray(4, 4 + len).toString('ascii') : 'unknown';
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function hashedMatches(entry: string, name: string): boolean {
  const [, magic, salt, hash] = entry.split('|');
  if (magic !== '1' || !salt || !hash) return false;
  const mac = crypto.createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
  const want = Buffer.from(hash, 'base64');
  return want.length === mac.length && crypto.timingSafeEqual(mac, want);
}

function hostsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith('|')) return hashedMatches(patterns, name);
  let matched = false;
  for (const p of patterns.split(',')) {
    const negated = p.startsWith('!');
    if (globToRegExp(negated ? p.slice(1) : p).test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** Checks the key `host:port` presented against the text of a known_hosts file. */
export function checkHostKey(
  knownHosts: string,
  file: string,
  host: string,
  port: number,
  key: Buffer,
): HostKeyVerdict {
  const name = knownHostsName(host, port);
  const listed: Buffer[] = [];
  let revoked = false;
  for (const raw of knownHosts.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0].startsWith('@') ? fields.shift() : undefined;
    const [patterns, , blob] = fields;
    if (!patterns || !blob || marker === '@cert-authority') continue;
    if (!hostsMatch(patterns, name)) continue;
    const listedKey = Buffer.from(blob, 'base64');
    if (marker === '@revoked') {
      if (listedKey.equals(key)) revoked = true;
      continue;
    }
    listed.push(listedKey);
  }
  const shown = `${keyType(key)} ${fingerprint(key)}`;
  if (revoked) {
    return { ok: false, kind: 'revoked', message: `the host key of ${name} (${shown}) is marked @revoked in ${file}` };
  }
  if (listed.some((k) => k.equals(key))) return { ok: true };
  if (listed.length > 0) {
    return {
      ok: false,
      kind: 'changed',
      message:
        `the host key of ${name} has CHANGED: it presented ${shown}, ${file} lists ` +
        `${listed.map((k) => `${keyType(k)} ${fingerprint(k)}`).join(', ')}. Someone may be in the middle, or the ` +
        `host was reinstalled: check with its owner, then replace its line in ${file}`,
    };
  }
  return {
    ok: false,
    kind: 'unknown',
    message:
      `the host key of ${name} (${shown}) is not in ${file}: check the fingerprint with the host's owner, ` +
      `then add it (ssh-keyscan -p ${port} ${host} >> ${file})`,
  };
}
