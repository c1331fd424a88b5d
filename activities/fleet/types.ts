// Inputs and results of the fleet activities (the I/O of the staging deploy and verify stages):
// one input object and one result object each, small JSON only (shared/STYLE.md). Workflows import
// these with `import type`. They live here, not in common/, until the deploy stage needs them there.
import type { HostExecResult } from '../../common/host-exec';

/** How Conveyor reaches a host: `local` is a Debian root on the worker's machine (the local stack),
 * `ssm` is AWS Systems Manager Run Command, `ssh` is SSH with key auth and known-host checking. */
export type HostExecutor = 'local' | 'ssm' | 'ssh';

export type PackageFormat = 'deb' | 'rpm';

export interface Host {
  instanceId: string;
  /** The instance's Name tag (its instance ID when untagged); CONVEYOR_HOST of verify steps. */
  name: string;
  distro: string;
  executor: HostExecutor;
  /** ssh: `host`, `host:port` or `[v6]:port`: tag ConveyorSshAddress, else the private IP. */
  address?: string;
  /** local: the host's root directory (tag ConveyorHostRoot). */
  root?: string;
}

export interface DiscoverHostsInput {
  /** Every tag must match (conveyor.yml `repositories[].staging.tags`). */
  tags: Record<string, string>;
  /** Matched against the instance's Distro tag. */
  distro: string;
}

export interface HostVersionInput {
  host: Host;
  packageName: string;
  format: PackageFormat;
}

export interface HostVersionResult {
  /** The installed version as the package manager reports it (`<version>-<release>`); null when
   * the package is not installed. */
  version: string | null;
}

/** The published repository a host installs from (UpgradeInput.repo, PrepareHostInput.repo). */
export interface PublishedRepo {
  /** The PUBLISHED repository, never the artifacts bucket. apt: http://…/<bucket>/apt;
   * yum: http://…/<bucket>/yum/<distro>/<channel>. */
  url: string;
  /** apt: `<codename>-<channel>`. */
  suite?: string;
  /** The published public key (…/<bucket>/keys/conveyor.asc). */
  keyUrl: string;
}

export interface UpgradeInput {
  host: Host;
  format: PackageFormat;
  packageName: string;
  /** `<version>-<build>` exactly. */
  version: string;
  repo: PublishedRepo;
  /** Object key of the upgrade's log in the artifacts bucket (used as given). */
  logKey: string;
  /** A rollback: going to a lower version is refused (DowngradeRefused) unless this is set. */
  allowDowngrade?: boolean;
}

export interface PrepareHostInput {
  host: Host;
  format: PackageFormat;
  /** Every package of the deploy (at least one, no repeats). */
  packages: string[];
  /** `<version>-<build>` exactly, of every package. */
  version: string;
  repo: PublishedRepo;
  /** Object key of the prepare's log in the artifacts bucket (used as given). */
  logKey: string;
  /** false: the versions only, no refresh (a host about to be upgraded at once, whose upgrade
   * refreshes it anyway). Default true. */
  refresh?: boolean;
}

export interface PrepareHostResult {
  /** The host's name. */
  host: string;
  /** Each package's installed version, as hostVersion reports it (null: not installed). */
  versions: Record<string, string | null>;
  /** False when asked for the versions only, or when every package is at the version already
   * (upgradeHost does nothing on such a host either): nothing was refreshed. */
  refreshed: boolean;
  logKey: string;
}

export interface UpgradeResult {
  /** The host's name. */
  host: string;
  before: string | null;
  after: string;
  logKey: string;
  /** False when the host already had the version: nothing was touched. */
  changed?: boolean;
}

export interface RunOnHostInput {
  host: Host;
  /** A trusted command from conveyor.yml (`widget --version`), run with `sh -c` on the host. */
  command: string;
  /** CONVEYOR_* values; they reach the command as environment variables, never in its text. */
  env: Record<string, string>;
  /** Object key of the log in the artifacts bucket (used as given). */
  logKey: string;
  timeoutSeconds?: number;
}

export interface RunOnHostResult {
  /** The command's exit code; 124 when it ran out of `timeoutSeconds`, 128+n when killed by signal n. */
  exitCode: number;
  tail: string;
  logKey: string;
  timedOut?: boolean;
  durationMs?: number;
}

export interface ExecOnHostInput {
  host: Host;
  /** Checked by the verify stage's validator (common/host-exec.ts) and again here. */
  argv: string[];
  /** base64; at most HostExecLimits.stdinBytes (REMOTE_STDIN_BYTES for ssh and ssm hosts). */
  stdin?: string;
  /** CONVEYOR_* values of the run; never the step's own environment. */
  env: Record<string, string>;
  timeoutSeconds: number;
}

/** Exit code and the first HostExecLimits.outputBytes of stdout and stderr, base64. */
export type ExecOnHostResult = HostExecResult;

export interface SshSettings {
  /** Private key (OpenSSH or PEM, unencrypted); default ~/.ssh/id_ed25519, then ~/.ssh/id_rsa. */
  keyFile?: string;
  /** OpenSSH known_hosts; default ~/.ssh/known_hosts. Unknown or changed host keys are refused. */
  knownHostsFile?: string;
  /** Default root; any other user runs the scripts through `sudo -n`. */
  user?: string;
}
