// Inputs and results of the repository activities: one input object and one result object each
// (shared/STYLE.md), small JSON only. Workflows import these with `import type`.
import type { ArtifactRef, DistroSpec, DocsRef } from '../../common/types';

export type Environment = 'staging' | 'production';

/** Which repository of a bucket: one APT suite or one YUM repository. */
export type RepositoryTarget = Pick<PublishPackagesInput, 'environment' | 'channel' | 'distro' | 'distroSpec'>;

export interface PublishPackagesInput {
  environment: Environment;
  /** e.g. unstable, stable: one APT suite `<codename>-<channel>` / one YUM repository per channel. */
  channel: string;
  /** The distro name of conveyor.yml. */
  distro: string;
  distroSpec: DistroSpec;
  /** All built for `distro` (anything else is refused as BadPackage). */
  artifacts: ArtifactRef[];
  /** Newest versions kept per package name and architecture in the channel, for the publishing
   * repository's own packages only: another repository's packages are never removed. */
  keepBuilds: number;
  /** owner/repo of the publishing pipeline. Every artifact's package name must be one of its
   * `packages` and not owned in this channel by another repository (the state records owners). */
  repository: string;
  /** The names the repository may publish (conveyor.yml `packages`); default: its name without
   * the owner (common/package-names.ts). */
  packages?: string[];
  /** The publish lock's lease this write runs under: checked right before the switch (fencing). */
  lease?: LeaseRef;
}

/** A lock and the lease its holder was granted (workflows/lock.ts). */
export interface LeaseRef {
  lockId: string;
  leaseId: string;
}

export interface PublishPackagesResult {
  /** False when the repository already was exactly this: nothing was written or deleted. */
  changed: boolean;
  /** Keys written, in the order they were written. */
  uploaded: string[];
  /** Keys deleted (retention, superseded index generations, strays in Conveyor's prefixes). */
  removed: string[];
  /** The repository relative to the bucket: `apt`, or `yum/<distro>/<channel>`. */
  repoUrlPath: string;
  /** Every index file of the live generation, signed ones included. */
  indexKeys: string[];
  /** APT only: the suite a sources.list names, `<codename>-<channel>`. */
  suite?: string;
  /** The public key clients trust, relative to the bucket. */
  keyPath: string;
  /** The generation live after this publish (absent in results recorded before it existed). */
  generation?: number;
  /** Incoming artifacts that retention dropped at once (older than the builds kept): not
   * published, and said so rather than reported as a silent success. */
  dropped?: { name: string; version: string; arch: string; key: string; reason: string }[];
}

export interface ResignInput {
  environment: Environment;
  channel: string;
  distro: string;
  distroSpec: DistroSpec;
  lease?: LeaseRef;
  /** A key rotation (`conveyor keys rotate`): yum repositories too, with the configured key set. */
  keys?: boolean;
}

export interface ResignResult {
  /** False for a repository that has no signed Release (yum: repomd.xml has no expiry). */
  resigned: boolean;
  /** The new Valid-Until (ISO), when the Release has one. */
  validUntil?: string;
  keys: string[];
}

export interface PublishDocsInput {
  environment: Environment;
  /** owner/repo */
  repository: string;
  channel: string;
  docs: DocsRef;
}

export interface PublishDocsResult {
  changed: boolean;
  /** `docs/<owner>/<repo>/<version>/`: the versioned site. */
  sitePath: string;
  /** `docs/<owner>/<repo>/<channel>/index.html`: the channel's redirect to the site. */
  indexPath: string;
  /** `docs/<owner>/<repo>/<channel>/current.json`. */
  currentPath: string;
  /** Site files written by this call (a finished copy writes none). */
  copied: string[];
  /** Files of the site left over from an earlier copy of the same version with other contents. */
  removed: string[];
  /** Files in the site. */
  files: number;
}

/** `conveyor repo rollback|remove`: a new generation of one channel's repository for one distro,
 * made from an earlier generation's snapshot or from the live one without a version. */
export interface RewriteRepositoryInput {
  environment: Environment;
  channel: string;
  distro: string;
  distroSpec: DistroSpec;
  action: { kind: 'rollback'; to: number } | { kind: 'remove'; name: string; version: string; reason: string };
  /** Who asked (the operator's own word, recorded with the change). */
  by?: string;
  /** The publish lock's lease this write runs under (fencing, as for a publish). */
  lease?: LeaseRef;
}

export interface RewriteRepositoryResult {
  /** False when the live generation already was exactly this. */
  changed: boolean;
  /** The generation live now, and the one live before. */
  generation: number;
  previousGeneration: number;
  repoUrlPath: string;
  suite?: string;
  /** Packages in the new generation. */
  packages: number;
  /** `name version arch` that came back, and that went. */
  added: string[];
  removed: string[];
  /** Pool files made again from their artifacts (collected since that generation was live). */
  restored: string[];
}
