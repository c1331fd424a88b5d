// The shell scripts sent to hosts. They are constant text: every value (package, version, URLs,
// suite) arrives as an environment variable that passed validate.ts, so nothing from outside is
// ever parsed as shell. POSIX sh only (dash on Debian, bash on EL), nothing beyond what a minimal
// host has (a minbase system has no curl: the orchestrator fetches the key, repo-source.ts).
//
// The upgrade configures the host to read the PUBLISHED repository with the published key, one
// source per repository URL and suite and one keyring per key (repo-source.ts), and refreshes only
// that source: a deploy must not depend on the distribution's mirrors, and a broken publish must
// break it. Exit codes 93/94 tell index.ts which failure it was. The prepare (prepareHost) is the
// same text without the install, after a report of every package's version: both are put together
// from the parts below, never copied.
//
// What makes an upgrade after a prepare cheap (deb), measured on a local host carrying Debian's
// ~50 MB bookworm lists: the two one-source updates no longer write apt's cache files (a cache made
// for one source is invalid for the whole source list, so every madison and install used to
// rebuild it, ~0.5 s), and the host's own update is skipped when its lists are byte for byte the
// ones the key check has just downloaded and verified. The key is still checked on every upgrade.
import type { ExecRequest } from './executor';
import { FleetFailure, fleetFailure } from './failures';
import { shellQuote } from './validate';

/** The package is not in the repository at that version. */
export const EXIT_NOT_PUBLISHED = 93;
/** The repository or its key cannot be read (unreachable, unsigned, signed by another key). */
export const EXIT_REPOSITORY = 94;

// `installed_version <package>` prints the installed version (`<version>-<release>`), nothing
// when the package is not installed. Shared by the version query and the prepare script.
const DEB_INSTALLED = [
  'command -v dpkg-query >/dev/null 2>&1 || { echo "conveyor: dpkg-query not found: not a deb host" >&2; exit 127; }',
  'installed_version() {',
  // Only `installed` counts: a removed package keeps its version in config-files state.
  "  status=$(dpkg-query -W -f='${db:Status-Status} ${Version}' \"$1\" 2>/dev/null) || status=''",
  '  case "$status" in',
  "    'installed '*) printf '%s' \"${status#installed }\" ;;",
  '  esac',
  '}',
  '',
].join('\n');

const RPM_INSTALLED = [
  'command -v rpm >/dev/null 2>&1 || { echo "conveyor: rpm not found: not an rpm host" >&2; exit 127; }',
  'installed_version() {',
  "  v=$(rpm -q --qf '%{VERSION}-%{RELEASE} ' \"$1\" 2>/dev/null) || v=''",
  '  printf \'%s\' "${v% }"',
  '}',
  '',
].join('\n');

const installed = (format: 'deb' | 'rpm') => (format === 'deb' ? DEB_INSTALLED : RPM_INSTALLED);

/** Prints `conveyor-version <nonce>: <version>` (empty when not installed). The nonce comes from
 * the environment, so the line proves that this very script ran on the host (an SSM endpoint
 * that answers Success without running anything cannot produce it). */
export function versionScript(format: 'deb' | 'rpm'): string {
  return `${installed(format)}printf 'conveyor-version %s: %s\\n' "$CONVEYOR_NONCE" "$(installed_version "$CONVEYOR_PACKAGE")"\n`;
}

/** Parses versionScript's answer: undefined when the marker is missing (the script did not run). */
export function parseVersionAnswer(output: string, nonce: string): { version: string | null } | undefined {
  return lastAnswer(output, `conveyor-version ${nonce}:`);
}

/** Parses the versions the prepare script printed, one line per package: undefined unless every
 * package has its line (the script did not run, or stopped before it had read them all). */
export function parseVersionsAnswer(
  output: string,
  nonce: string,
  packages: string[],
): Record<string, string | null> | undefined {
  const versions: Record<string, string | null> = {};
  for (const p of packages) {
    const answer = lastAnswer(output, `conveyor-version ${nonce} ${p}:`);
    if (!answer) return undefined;
    versions[p] = answer.version;
  }
  return versions;
}

function lastAnswer(output: string, marker: string): { version: string | null } | undefined {
  const lines = output.split('\n').filter((l) => l.startsWith(marker));
  if (lines.length === 0) return undefined;
  const value = lines[lines.length - 1].slice(marker.length).trim();
  return { version: value === '' ? null : value.split(/\s+/).join(' ') };
}

// The upgrade and the prepare script are built from the parts below, in this order:
//   setup → refresh (deb: key check, layout, the host's update; rpm: key check) → published check
//   → (rpm: layout) → install (upgrade only)
// so a prepare is exactly an upgrade without its install, and both verify the key the same way.
// CONVEYOR_PACKAGES holds the package names (validated, so free of blanks and glob characters)
// separated by spaces: one for an upgrade, every package of the deploy for a prepare.

// Shared by both formats: refuse to go on without the values the layout is named after.
const LAYOUT_VALUES = `: "\${CONVEYOR_SOURCE_ID:?}" "\${CONVEYOR_KEYRING_ID:?}" "\${CONVEYOR_KEY:?}" "\${CONVEYOR_REPO_URL:?}"`;

/** Prints each package's installed version (`conveyor-version <nonce> <package>: <version>`) and
 * ends the script when every one is at CONVEYOR_VERSION already (nothing will be installed there,
 * as upgradeHost then does nothing) or when CONVEYOR_REFRESH is 0 (versions only). */
const VERSIONS = `set -f
current=1
for p in $CONVEYOR_PACKAGES; do
  v=$(installed_version "$p")
  printf 'conveyor-version %s %s: %s\\n' "$CONVEYOR_NONCE" "$p" "$v"
  [ "$v" = "$CONVEYOR_VERSION" ] || current=0
done
set +f
if [ "$current" = 1 ]; then
  echo "conveyor: every package is at $CONVEYOR_VERSION already: nothing to refresh"
  exit 0
fi
if [ "$CONVEYOR_REFRESH" = 0 ]; then
  echo "conveyor: versions only: the upgrade refreshes this host itself"
  exit 0
fi
`;

/** Fails with EXIT_NOT_PUBLISHED unless \`$available\` (lines "<package> <version>") offers
 * CONVEYOR_VERSION of every package in CONVEYOR_PACKAGES; names every one that is missing. Runs
 * with globbing off (set -f), as the list is split on blanks. */
const publishedCheck = (where: string) => `missing=''
for p in $CONVEYOR_PACKAGES; do
  if ! printf '%s\\n' "$available" | grep -qxF "$p $CONVEYOR_VERSION"; then
    echo "conveyor: $p $CONVEYOR_VERSION is not in ${where}; it has: $(printf '%s\\n' "$available" | awk -v p="$p" '$1 == p { printf "%s ", $2 }')" >&2
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then exit ${EXIT_NOT_PUBLISHED}; fi
`;

const DEB_SETUP = `set -eu
export DEBIAN_FRONTEND=noninteractive
${LAYOUT_VALUES}
keyring="/etc/apt/keyrings/$CONVEYOR_KEYRING_ID.asc"
list="/etc/apt/sources.list.d/$CONVEYOR_SOURCE_ID.list"
mkdir -p /etc/apt/keyrings /etc/apt/sources.list.d
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chown _apt "$tmp" 2>/dev/null || true
source_line() { printf 'deb [signed-by=%s] %s %s main\\n' "$1" "$CONVEYOR_REPO_URL" "$CONVEYOR_SUITE"; }
printf '%s' "$CONVEYOR_KEY" > "$tmp/key.asc"
chmod 644 "$tmp/key.asc"
source_line "$tmp/key.asc" > "$tmp/check.list"
`;

const DEB_REFRESH = `# Both updates below read one source only, and apt-get update ends by writing its package cache
# (/var/cache/apt/*.bin) for the sources it was given. A cache made for one source is invalid for
# the host's whole source list, so the next apt-cache or apt-get would rebuild it from every list
# the host has (Debian's own are ~50 MB: 0.5 s here). These updates keep their cache in memory
# (empty Dir::Cache::*); the lists they write are what counts, and apt checks the cache against
# them whenever it reads it, so a cache is never trusted with lists newer than it.
# apt verifies an InRelease only when it downloads it: one unchanged since the last update is a
# Hit (HTTP 304) that is not checked again, so a changed key would go unnoticed. Read the source
# into empty lists first, which verifies everything with the key. The host's own configuration
# changes only after that succeeded: a repository signed by another key leaves it as it was.
mkdir -p "$tmp/lists/partial"
chown -R _apt "$tmp/lists" 2>/dev/null || true
if ! apt-get update -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o Dir::State::Lists="$tmp/lists" -o Dir::Etc::SourceList="$tmp/check.list" -o Dir::Etc::SourceParts=-; then
  echo "conveyor: apt-get cannot read $CONVEYOR_REPO_URL $CONVEYOR_SUITE with the key $CONVEYOR_KEY_URL ($CONVEYOR_KEYRING_ID)" >&2
  exit ${EXIT_REPOSITORY}
fi
# One source per repository URL and suite, one keyring per key: every package deployed from this
# suite shares them, so two sources can never name two keyrings for it (apt refuses the whole
# source list then). Written beside their place and renamed: apt never reads half a file.
install -m 644 "$tmp/key.asc" "/etc/apt/keyrings/.$CONVEYOR_KEYRING_ID.new"
mv -f "/etc/apt/keyrings/.$CONVEYOR_KEYRING_ID.new" "$keyring"
source_line "$keyring" > "/etc/apt/.$CONVEYOR_SOURCE_ID.new"
chmod 644 "/etc/apt/.$CONVEYOR_SOURCE_ID.new"
# An unchanged source list keeps its file: apt rebuilds its cache from every list when a source
# list is newer than the cache, and the cache a prepare built would be lost for nothing.
if cmp -s "/etc/apt/.$CONVEYOR_SOURCE_ID.new" "$list"; then
  rm -f "/etc/apt/.$CONVEYOR_SOURCE_ID.new"
else
  mv -f "/etc/apt/.$CONVEYOR_SOURCE_ID.new" "$list"
fi
echo "conveyor: $list: $(cat "$list")"
# Repair the earlier layout (one source and keyring per package, conveyor-<package>): any other
# conveyor-*.list naming this URL and suite conflicts with the one above.
for f in /etc/apt/sources.list.d/conveyor-*.list; do
  [ -f "$f" ] && [ "$f" != "$list" ] || continue
  if awk -v url="$CONVEYOR_REPO_URL" -v suite="$CONVEYOR_SUITE" '
    $1 == "deb" {
      i = 2
      if ($i ~ /^\\[/) { while (i < NF && $i !~ /\\]$/) i++; i++ }
      if (($i == url || $i == url "/") && $(i + 1) == suite) found = 1
    }
    END { exit !found }' "$f"; then
    echo "conveyor: removing $f: it names $CONVEYOR_REPO_URL $CONVEYOR_SUITE too, now read through $list"
    rm -f "$f"
  fi
done
# Keyrings of ours that no source names any more (the earlier layout's, a rotated key's).
for k in /etc/apt/keyrings/conveyor-*.asc; do
  [ -f "$k" ] || continue
  if ! grep -rqsF "$k" /etc/apt/sources.list /etc/apt/sources.list.d; then
    echo "conveyor: removing $k: no source names it"
    rm -f "$k"
  fi
done
# The host's own update of this source, unless its lists are already byte for byte the ones the
# key check just downloaded and verified (a prepare refreshed them, nothing was published since):
# then they are current and checked, and a second download would change nothing.
same=0
differ=0
for f in "$tmp/lists/"*; do
  [ -f "$f" ] && [ "\${f##*/}" != lock ] || continue
  if cmp -s "$f" "/var/lib/apt/lists/\${f##*/}"; then same=$((same + 1)); else differ=1; fi
done
if [ "$same" -gt 0 ] && [ "$differ" = 0 ]; then
  echo "conveyor: the host's lists of $CONVEYOR_REPO_URL $CONVEYOR_SUITE are the ones just verified: not read again"
elif ! apt-get update -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o Dir::Etc::SourceList="$list" -o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=0; then
  echo "conveyor: apt-get cannot read $CONVEYOR_REPO_URL $CONVEYOR_SUITE with the key $CONVEYOR_KEY_URL ($CONVEYOR_KEYRING_ID)" >&2
  exit ${EXIT_REPOSITORY}
fi
`;

const DEB_PUBLISHED = `# madison lines: " widget |    1.0.0-3 | http://… Packages", read as "widget 1.0.0-3"
set -f
available=$(apt-cache madison $CONVEYOR_PACKAGES 2>/dev/null | sed -n 's/^ *\\([^ |]*\\) *| *\\([^ |]*\\) *|.*$/\\1 \\2/p')
${publishedCheck('$CONVEYOR_REPO_URL $CONVEYOR_SUITE')}set +f
`;

const DEB_INSTALL = `set -- -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
if [ "$CONVEYOR_DOWNGRADE" = 1 ]; then set -- "$@" --allow-downgrades; fi
apt-get install "$@" "$CONVEYOR_PACKAGE=$CONVEYOR_VERSION"
`;

const RPM_SETUP = `set -eu
${LAYOUT_VALUES}
id="$CONVEYOR_SOURCE_ID"
repo="/etc/yum.repos.d/$id.repo"
key="/etc/pki/rpm-gpg/$CONVEYOR_KEYRING_ID.asc"
mkdir -p /etc/yum.repos.d /etc/pki/rpm-gpg
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
repo_file() {
  cat <<REPO
[$id]
name=Conveyor $CONVEYOR_REPO_URL
baseurl=$CONVEYOR_REPO_URL
enabled=1
gpgcheck=1
repo_gpgcheck=1
gpgkey=file://$1
skip_if_unavailable=False
metadata_expire=0
REPO
}
mkdir -p "$tmp/repos" "$tmp/cache"
printf '%s' "$CONVEYOR_KEY" > "$tmp/key.asc"
repo_file "$tmp/key.asc" > "$tmp/repos/$id.repo"
`;

const RPM_PUBLISHED = `# Read the repository with the key into an empty cache first (dnf keeps the keys it imported for
# repomd.xml in its cache: a cached keyring would trust a key the published one replaced). The
# host's own configuration changes only after that succeeded.
set -f
if ! available=$(dnf -q -y --setopt=reposdir="$tmp/repos" --setopt=cachedir="$tmp/cache" --disablerepo='*' --enablerepo="$id" repoquery --qf '%{name} %{version}-%{release}' $CONVEYOR_PACKAGES); then
  echo "conveyor: dnf cannot read $CONVEYOR_REPO_URL with the key $CONVEYOR_KEY_URL ($CONVEYOR_KEYRING_ID)" >&2
  exit ${EXIT_REPOSITORY}
fi
${publishedCheck('$CONVEYOR_REPO_URL')}set +f
`;

const RPM_LAYOUT = `# One .repo per baseurl, one key file per key, shared by every package deployed from there.
install -m 644 "$tmp/key.asc" "/etc/pki/rpm-gpg/.$CONVEYOR_KEYRING_ID.new"
mv -f "/etc/pki/rpm-gpg/.$CONVEYOR_KEYRING_ID.new" "$key"
repo_file "$key" > "/etc/yum.repos.d/.$id.new"
chmod 644 "/etc/yum.repos.d/.$id.new"
mv -f "/etc/yum.repos.d/.$id.new" "$repo"
echo "conveyor: $repo:"
cat "$repo"
# Repair the earlier layout (one .repo per package, conveyor-<package>) for this baseurl.
for f in /etc/yum.repos.d/conveyor-*.repo; do
  [ -f "$f" ] && [ "$f" != "$repo" ] || continue
  if grep -qxF -e "baseurl=$CONVEYOR_REPO_URL" -e "baseurl=$CONVEYOR_REPO_URL/" "$f"; then
    echo "conveyor: removing $f: it names $CONVEYOR_REPO_URL too, now read through $repo"
    old=$(sed -n 's/^\\[\\(.*\\)\\]$/\\1/p' "$f" | head -n 1)
    rm -f "$f"
    if [ -n "$old" ]; then rm -rf "/var/cache/dnf/$old-"*; fi
  fi
done
for k in /etc/pki/rpm-gpg/conveyor-*.asc; do
  [ -f "$k" ] || continue
  if ! grep -rqsF "file://$k" /etc/yum.repos.d; then
    echo "conveyor: removing $k: no repository names it"
    rm -f "$k"
  fi
done
# The host's cache of this repository (metadata and the keyring dnf verifies repomd.xml with)
# starts afresh with the key just installed.
rm -rf "/var/cache/dnf/$id-"*
`;

const RPM_INSTALL = `if [ "$CONVEYOR_DOWNGRADE" = 1 ]; then action=downgrade; else action=install; fi
dnf -y "$action" "$CONVEYOR_PACKAGE-$CONVEYOR_VERSION"
`;

/** Everything of the upgrade but the install: the key checked, the host's source (or .repo) and
 * keyring installed, its metadata refreshed, every package's version checked to be published. */
const REFRESH = {
  deb: DEB_SETUP + DEB_REFRESH + DEB_PUBLISHED,
  rpm: RPM_SETUP + RPM_PUBLISHED + RPM_LAYOUT,
};

/** Reads CONVEYOR_PACKAGE and CONVEYOR_PACKAGES (the same one name), CONVEYOR_VERSION,
 * CONVEYOR_REPO_URL, CONVEYOR_SUITE (deb), CONVEYOR_KEY_URL (for messages), CONVEYOR_KEY (the
 * armored key), CONVEYOR_KEYRING_ID and CONVEYOR_SOURCE_ID (repo-source.ts), CONVEYOR_DOWNGRADE
 * (1 or 0). */
export function upgradeScript(format: 'deb' | 'rpm'): string {
  return REFRESH[format] + (format === 'deb' ? DEB_INSTALL : RPM_INSTALL);
}

/** The prepare: every package's installed version (VERSIONS), then, unless all of them are at
 * CONVEYOR_VERSION or CONVEYOR_REFRESH is 0, the upgrade without its install. Reads
 * CONVEYOR_PACKAGES, CONVEYOR_NONCE, CONVEYOR_REFRESH (1 or 0) and, to refresh, what upgradeScript
 * reads but CONVEYOR_PACKAGE and CONVEYOR_DOWNGRADE. */
export function prepareScript(format: 'deb' | 'rpm'): string {
  return `set -eu\n${installed(format)}${VERSIONS}${REFRESH[format]}`;
}

/** `exec` of argv words on the host, each one quoted: the host-exec command. */
export function execScript(argv: string[]): string {
  return `exec ${argv.map(shellQuote).join(' ')}\n`;
}

/** `script` with `stdin` as its standard input where none can be streamed (ssh, ssm): the bytes
 * travel base64 in a here-document (only [A-Za-z0-9+/=] lines, so its end marker cannot occur in
 * it) into a temporary file that becomes stdin and is unlinked at once. */
export function withStdinScript(script: string, stdin: Buffer): string {
  const lines = stdin.toString('base64').replace(/.{1,76}/g, '$&\n');
  return [
    'conveyor_stdin=$(mktemp) || exit 255',
    `base64 -d > "$conveyor_stdin" <<'CONVEYOR_STDIN' || exit 255`,
    `${lines}CONVEYOR_STDIN`,
    'exec < "$conveyor_stdin"',
    'rm -f "$conveyor_stdin"',
    script,
  ].join('\n');
}

/** The most stdin that ssh and ssm scripts carry in their own text: the script travels as one
 * argument (ssh: `sh -c`, at most 128 KiB on Linux) or one SSM parameter. */
export const REMOTE_STDIN_BYTES = 64 * 1024;

/** The script of an ssh or ssm request with its stdin inside it (withStdinScript). */
export function remoteScript(req: Pick<ExecRequest, 'script' | 'stdin' | 'host'>): string {
  if (!req.stdin || req.stdin.length === 0) return req.script;
  if (req.stdin.length > REMOTE_STDIN_BYTES) {
    throw fleetFailure(
      FleetFailure.BadInput,
      `host ${req.host.name} (${req.host.executor}): a stdin of ${req.stdin.length} bytes is more than the ` +
        `${REMOTE_STDIN_BYTES / 1024} KiB an ssh or ssm command can carry; copy larger inputs another way`,
    );
  }
  return withStdinScript(req.script, req.stdin);
}
