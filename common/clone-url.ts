// Clone URLs are trusted config, but a credential pasted into one would travel everywhere the URL
// does (workflow inputs, spool files, failure messages, .git/config): config refuses them.

/** A clone URL with a user name or password in it, or undefined when it has none. */
export function embeddedCredentials(cloneUrl: string): string | undefined {
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/@]*)@/i.exec(cloneUrl);
  if (!m) return undefined;
  const scheme = m[1].toLowerCase();
  const userinfo = m[2];
  // ssh://git@host/… names the SSH user, not a secret; a password there is one.
  if (scheme === 'ssh' || scheme === 'git+ssh') return userinfo.includes(':') ? 'a password' : undefined;
  return userinfo.includes(':') ? 'a user name and password' : 'a user name or token';
}
