// The package stage's activities, run on a distro's build queue (`build-<distro>`), where the
// format's tools (dpkg-deb, rpm, rpmbuild) are installed. Dependencies are injected; workflows
// see only `typeof` the result through `proxyActivities` (import type).
import type { S3Client } from '@aws-sdk/client-s3';
import type { SandboxHost } from '../exec/sandbox';
import { createBuildDocs } from './build-docs';
import { createBuildPackages } from './build-packages';

export type { BuildPackagesInput, BuildPackagesResult } from './build-packages';
export type { BuildDocsInput, BuildDocsResult, DocsManifest } from './build-docs';

export interface PackagingDeps {
  s3: S3Client;
  artifactsBucket: string;
  /** '' or a prefix ending in '/', as parseS3Url returns it. */
  artifactsPrefix: string;
  workspaceRoot?: string;
  sandbox?: SandboxHost;
}

export function createPackagingActivities(deps: PackagingDeps) {
  return {
    buildPackages: createBuildPackages(deps),
    buildDocs: createBuildDocs(deps),
  };
}

export type PackagingActivities = ReturnType<typeof createPackagingActivities>;
