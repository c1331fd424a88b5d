// Which package names a repository may build and publish (conveyor.yml `packages`). Pure: used by
// the config loader, the package and publish activities, and workflow code (which must compute the
// same list for runs recorded before `packages` existed).

/** A package name both formats accept: Debian's are lowercase (`[a-z0-9][a-z0-9+.-]+`), rpm's
 * also allow capitals and `_`; the union, so one list serves a repository's deb and rpm distros. */
export const PACKAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

/** The default package of a repository: its name without the owner (`widget` for `acme/widget`). */
export function defaultPackageName(repository: string): string {
  return repository.slice(repository.indexOf('/') + 1);
}

/** The names a repository owns. A spec recorded before `packages` existed gets the default, so a
 * rerun or promotion of an old run checks exactly what the config of today would. */
export function ownedPackages(repository: { name: string; packages?: string[] }): string[] {
  return repository.packages && repository.packages.length > 0
    ? [...repository.packages]
    : [defaultPackageName(repository.name)];
}

/** The refusal every stage uses for a name the repository does not own, with the fix in it. */
export function notOwnedMessage(name: string, repository: string, owned: string[]): string {
  return (
    `package ${JSON.stringify(name)} is not among ${repository}'s packages (packages: [${owned.join(', ')}]); ` +
    `add it to the packages of ${repository} in conveyor.yml (repositories[].packages)`
  );
}
