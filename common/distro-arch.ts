// Architecture names differ between the two package worlds: rpm says x86_64 and aarch64, Debian
// says amd64 and arm64. A deb distro configured with rpm names builds packages apt calls amd64,
// which the package stage then refused ("its architecture is amd64, but bookworm is x86_64"), and
// would list `Architecture: all` packages under binary-x86_64, which no amd64 client reads
// (issue 13). Config load normalises a deb distro's arch with this table; the publisher applies
// it again to specs recorded in older runs. Pure: workflows may import it.

/** rpm (and uname) names → Debian's, for the architectures Debian and RHEL-likes share. */
export const DEBIAN_ARCH: Readonly<Record<string, string>> = {
  x86_64: 'amd64',
  aarch64: 'arm64',
  i386: 'i386',
  i686: 'i386',
  armv7hl: 'armhf',
  armv7l: 'armhf',
  ppc64le: 'ppc64el',
  s390x: 's390x',
  riscv64: 'riscv64',
};

/** Debian's name for `arch` (unchanged when it already is one, or is unknown). */
export function debianArch(arch: string): string {
  return DEBIAN_ARCH[arch] ?? arch;
}
