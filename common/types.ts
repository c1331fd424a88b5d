// Workflow and activity inputs/results: small JSON only. One input object and one result object
// per workflow and activity, so fields can be added without breaking running histories.
import type { ChatRoute } from './chat';
import type { StageName } from './ids';

/** The commands of a repository (conveyor.yml `steps`). Trusted: they come from config, never a webhook. */
export interface RepositorySteps {
  unit?: string;
  integration?: string;
  package?: string;
  docs?: string;
  smoke?: string;
  /** A command on a build worker, or the built-in kind: the marked examples of these documents
   * (path patterns in the checkout) run on the staging hosts (common/doc-examples.ts). */
  e2e?: string | ExamplesE2e;
}

/** conveyor.yml `e2e: { examples: [...] }`. */
export interface ExamplesE2e {
  examples: string[];
}

/** What the pipeline needs of a repository's config, snapshotted into the run's input at start so
 * a run (and a rerun from its history) does not change when conveyor.yml changes later. */
export interface RepositorySpec {
  name: string; // GitHub full_name, owner/repo
  cloneUrl: string;
  steps: RepositorySteps;
  distros: string[];
  channel: string;
  release: boolean;
  approval: boolean;
  /** Skip a queued staging deploy when a newer commit of the branch waits behind it. */
  supersede: boolean;
  /** Staging hosts: EC2 tags (plus Distro=<distro>) and how many to upgrade at a time. */
  staging?: { tags: Record<string, string>; batchSize: number };
  stepTimeoutSeconds: number;
  /** After this long without a builder taking a step, the run says it waits for a build worker. */
  workerWaitNoticeSeconds?: number;
  /** The built-in packager's settings, when the repository uses it. */
  builtinPackage?: BuiltinPackageSpec;
  /** The package names this repository may build and publish (conveyor.yml `packages`). Absent in
   * runs recorded before it existed: use `ownedPackages()` (common/package-names.ts), never this. */
  packages?: string[];
  keepBuilds: number;
  /** How long a failed stage waits for `retry`/`abort` before the run fails. */
  operatorWindowSeconds: number;
  /** How long a run waits in `awaiting-approval` before it ends `expired` (default 3 days). */
  approvalTimeoutSeconds?: number;
  /** The Temporal Web UI, for links back to a run (commit statuses, chat messages). */
  webUiUrl?: string;
  /** Chat notification routes of this run (conveyor.yml `notify`), credentials by env var name.
   * Absent when none are configured, and in runs recorded before ChatOps. */
  notify?: ChatRoute[];
  /** Bucket names of the environments: a publish lock is per bucket and channel. */
  buckets?: { staging: string; production: string };
  /** HTTP base URLs of the environments' buckets (repositories, keys, docs). */
  publicUrls: { staging: string; production: string };
  /** Format, codename and arch of each distro in `distros`. */
  distroSpecs: Record<string, DistroSpec>;
  /** How the repository's steps are isolated on the build workers (conveyor.yml `sandbox`).
   * Absent in runs started before sandboxing existed: the activities then use the defaults. */
  sandbox?: SandboxSpec;
}

/** The repository steps that run in a sandbox on a build worker (`smoke` runs on the hosts). */
export type SandboxedStep = 'unit' | 'integration' | 'package' | 'docs' | 'e2e';

/** conveyor.yml `sandbox` of a repository, defaults filled in. */
export interface SandboxSpec {
  /** `bwrap` (default): steps run under bubblewrap; `none`: unsandboxed, as the builder's user. */
  mode: 'bwrap' | 'none';
  /** Network for the steps: false (default), true for every step, or the names of the steps that get it. */
  network: boolean | SandboxedStep[];
  limits: SandboxLimits;
}

export interface SandboxLimits {
  /** Memory of all the step's processes together (tmpfs files in /tmp and $HOME included). */
  memoryMb: number;
  /** Processes (and threads) alive at once. */
  pids: number;
  /** Bytes in the workspace: the checkout, $CONVEYOR_OUT and everything the step writes there. */
  diskMb: number;
  /** CPU time of all the step's processes together; unlimited when absent. */
  cpuSeconds?: number;
}

export interface BuiltinPackageSpec {
  name: string;
  maintainer: string;
  description: string;
  arch?: string;
  depends: { deb: string[]; rpm: string[] };
  /** Payload compression; unset: the tools' defaults (xz for dpkg-deb, rpmbuild's own). */
  compression?: 'xz' | 'gzip' | 'zstd';
}

/** Facts about the pushed commit shown to people (memo, Web UI); never used in a command line. */
export interface CommitInfo {
  message: string;
  author: string;
  compareUrl: string;
  timestamp?: string;
}

export interface PipelineInput {
  repository: RepositorySpec;
  branch: string;
  sha: string;
  commit: CommitInfo;
  deliveryId?: string;
}

export type RunStatus =
  | 'running'
  | 'awaiting-operator'
  | 'awaiting-approval'
  | 'succeeded'
  | 'failed'
  | 'aborted'
  | 'rejected'
  | 'expired'
  | 'superseded';

export type StageState = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';

export interface StageStatus {
  name: StageName;
  distro?: string;
  state: StageState;
  attempt: number;
  workflowId: string;
  startedAt?: string;
  endedAt?: string;
  logKeys: string[];
  error?: string;
  tail?: string;
  /** What the stage waits for right now (`waiting for lock …, held by …`), as its child reports it. */
  note?: string;
}

export interface OperatorAction {
  action: 'approve' | 'reject' | 'retry' | 'abort';
  by: string;
  at: string;
  /** The stage asked for, the reason or comment given. */
  detail?: string;
  /** False when the run ignored it (nothing waited for it, or the run had ended). */
  accepted: boolean;
}

export interface PipelineStatus {
  workflowId: string;
  repository: string;
  branch: string;
  sha: string;
  status: RunStatus;
  stage?: StageName;
  startedAt: string;
  endedAt?: string;
  stages: StageStatus[];
  failure?: string;
  /** Build number from the branch-state entity, once allocated. */
  build?: number;
  /** `<version>-<build>` of the packages, once built. */
  version?: string;
  /** Where the packages and docs were published (paths relative to the environment's bucket). */
  published?: {
    environment: string;
    channel: string;
    /** `dropped`: artifacts retention dropped at once instead of publishing them (with why). */
    repositories: { distro: string; path: string; suite?: string; dropped?: string[] }[];
    docs?: string;
  };
  /** Where the packages and docs were promoted (production). */
  promoted?: PipelineStatus['published'];
  /** How this run's repository steps were isolated, from the run's input: `none` means they ran
   * unsandboxed as the builder's user (conveyor.yml `sandbox.mode: none`). Absent for runs started
   * before sandboxing existed. */
  sandbox?: SandboxSpec['mode'];
  /** The approval gate, once reached: who decided and when. */
  approval?: {
    requestedAt: string;
    decision?: 'approved' | 'rejected' | 'expired';
    by?: string;
    at?: string;
    comment?: string;
  };
  /** The release stage's tag and next patch branch. */
  release?: { tag: string; nextBranch: string };
  /** Every operator action the run received (approve, reject, retry, abort), newest last: who sent
   * it (as the sender says: anyone who can reach the Temporal frontend can send one; see the
   * README's production section), when, and whether the run acted on it. */
  actions?: OperatorAction[];
  /** Things that went ahead but that an operator should know (a deployed commit that had vanished). */
  warnings?: string[];
  /** Staging hosts per distro after deploy: before/after version and outcome of each. */
  hosts?: {
    distro: string;
    hosts: {
      instanceId: string;
      name: string;
      before: string | null;
      after: string | null;
      outcome: string;
      error?: string;
    }[];
  }[];
}

export interface PipelineResult {
  status: RunStatus;
  stages: StageStatus[];
  build?: number;
  version?: string;
  published?: PipelineStatus['published'];
  promoted?: PipelineStatus['published'];
  hosts?: PipelineStatus['hosts'];
}

export interface StepResult {
  step: string;
  exitCode: number;
  /** `git rev-parse HEAD` of the workspace the command ran in. */
  headSha: string;
  logKey: string;
  tail: string;
  durationMs: number;
}

export interface RunStepInput {
  pipelineId: string;
  /** The stage child's workflow ID; logs are kept under it. */
  stageWorkflowId: string;
  stage: StageName;
  step: keyof RepositorySteps;
  command: string;
  cloneUrl: string;
  sha: string;
  /** CONVEYOR_* values handed to the command as environment variables, never spliced into it. */
  env: Record<string, string>;
  timeoutSeconds?: number;
  /** The repository's sandbox settings (RepositorySpec.sandbox); the defaults when absent. */
  sandbox?: SandboxSpec;
}

export interface TestStageInput {
  pipelineId: string;
  repository: RepositorySpec;
  branch: string;
  sha: string;
  /** The distro whose build queue runs the tests. */
  distro: string;
}

export interface TestStageResult {
  steps: StepResult[];
}

/** Who built an artifact: the pipeline's identity, recorded in the object's key and metadata and
 * in its reference, so no two commits share an artifact and every published file names its commit.
 * Optional in the types because references recorded in older histories lack them. */
export interface BuildIdentity {
  /** owner/repo */
  repository?: string;
  branch?: string;
  /** The full commit SHA the package or site was built from. */
  commit?: string;
  build?: number;
}

/** A built package in the artifacts bucket. Travels between stages instead of bytes; `sha256` is
 * checked on every copy, so promotion publishes exactly the bytes that passed staging. */
export interface ArtifactRef extends BuildIdentity {
  /** Object key in the artifacts bucket:
   * `packages/<owner>/<repo>/<branch>/<build>/<commit>/<distro>/<file>` (older runs:
   * `packages/<owner>/<repo>/<build>/<distro>/<file>`, still read as recorded). */
  key: string;
  sha256: string;
  size: number;
  /** Package name, version (`<version>-<build>`) and architecture as the package itself declares them. */
  name: string;
  version: string;
  arch: string;
  format: 'deb' | 'rpm';
  distro: string;
  /** File name, e.g. widget_1.0.0-7_all.deb. */
  file: string;
  /** rpms signed once at package time (patch `sign-at-package`): the fingerprint of the key whose
   * header signature the stored file carries. `key`, `sha256` and `size` are then the signed
   * file's (`signed/<fingerprint>/packages/…`), published unchanged to staging and production.
   * Absent: debs, and rpms of runs recorded before, which the publisher signs at each publish. */
  signer?: string;
  /** The file the builder stored, before it was signed (signed rpms only). */
  unsigned?: { key: string; sha256: string; size: number };
  /** debs: what the APT index needs from the file (control stanza, file list, hashes), read by the
   * builder and stored beside it, with that object's SHA-256 (activities/repository/deb-index-facts.ts).
   * A publish then copies the pool file server-side without downloading it. Absent: runs recorded
   * before, and artifacts adopted from an attempt that stored none; those are downloaded. */
  aptIndex?: { key: string; sha256: string };
  /** rpms signed at package time: what the YUM index needs from the signed file (createrepo_c's
   * fragments, hashes), made by signPackages and stored beside it, with that object's SHA-256
   * (activities/repository/rpm-index-facts.ts). A publish by the same key then copies the pool file
   * server-side without downloading it or running createrepo_c over it. Absent: runs recorded
   * before; those rpms are downloaded and read. */
  yumIndex?: { key: string; sha256: string };
}

/** A built documentation site in the artifacts bucket: a manifest of files with their SHA-256. */
export interface DocsRef extends BuildIdentity {
  /** Key of the manifest (JSON: { version, files: [{ path, key, sha256, size }], and the build's
   * identity }): `docs/<owner>/<repo>/<branch>/<build>/<commit>/manifest.json`. */
  manifestKey: string;
  sha256: string;
  files: number;
  version: string;
}

export interface DistroSpec {
  format: 'deb' | 'rpm';
  codename?: string;
  arch: string;
}
