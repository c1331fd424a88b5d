// buildDocs: the documentation site of one build. Runs the repository's `docs` step once, stores
// every file it wrote to CONVEYOR_OUT at `docs/<owner>/<repo>/<branch>/<build>/<commit>/<path>`,
// then the manifest `manifest.json` beside them ({ version, repository, branch, commit, build,
// files: [{ path, key, sha256, size }] }); every object also carries that identity as metadata.
//
// Ordering: the manifest is written last, so its existence means every file it lists is stored;
// readers (publish, promote) go through the manifest and never list the prefix. Once it exists the
// build's docs are done: a re-run returns it unchanged without running the step again — only when
// its recorded commit is this run's (store-object.ts): a manifest another commit (or nobody)
// recorded at this key is refused, never adopted.
import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import type { BuildIdentity, DocsRef, RepositorySpec } from '../../common/types';
import { withStepWorkspace, type RunStepDeps } from '../exec/run-step';
import { buildPath, docsKey, identityMetadata, identityOf, packagingEnv } from './packaging-env';
import { commitEpoch, projectVersion } from './project-version';
import { adopt, sha256Hex, storeObject } from './store-object';

export interface BuildDocsInput {
  pipelineId: string;
  stageWorkflowId: string;
  repository: RepositorySpec;
  branch: string;
  sha: string;
  build: number;
}

export interface BuildDocsResult {
  /** null when the repository has no docs step. */
  docs: DocsRef | null;
  logKey?: string;
}

export interface DocsManifest extends BuildIdentity {
  version: string;
  files: { path: string; key: string; sha256: string; size: number }[];
}

const MANIFEST = 'manifest.json';
const PARALLEL_UPLOADS = 8;

export function createBuildDocs(deps: RunStepDeps) {
  return async function buildDocs(input: BuildDocsInput): Promise<BuildDocsResult> {
    const command = input.repository.steps.docs;
    if (!command) return { docs: null };
    buildPath(input);
    const manifestKey = docsKey(deps.artifactsPrefix, input, MANIFEST);
    const owner = identityMetadata(input);
    const identity = identityOf(input);
    const step = {
      stageWorkflowId: input.stageWorkflowId,
      step: 'docs',
      cloneUrl: input.repository.cloneUrl,
      sha: input.sha,
      repository: input.repository.name,
      sandbox: input.repository.sandbox,
    };
    return withStepWorkspace(deps, step, async (ws) => {
      const signal = ws.hooks.signal;
      const earlier = await readManifest(deps, manifestKey, owner, identity, signal);
      if (earlier) {
        ws.note(`the docs of build ${input.build} are already stored (${manifestKey}); kept, the step did not run`);
        return { docs: earlier, logKey: ws.logKey };
      }
      const { version, source } = await projectVersion(ws.src, input.repository.cloneUrl, input.sha, signal);
      const epoch = await commitEpoch(ws.src, input.sha, signal);
      ws.note(`version ${version} (from ${source}); docs of build ${input.build} are ${version}-${input.build}`);
      await ws.run(command, packagingEnv(input, version, epoch), input.repository.stepTimeoutSeconds);

      const { files, skipped } = walk(ws.out);
      if (skipped.length > 0) ws.note(`skipped in $CONVEYOR_OUT (not regular files): ${skipped.join(', ')}`);
      if (files.length === 0) {
        throw ApplicationFailure.nonRetryable(
          `the docs step of ${input.repository.name} wrote no files into $CONVEYOR_OUT`,
          FailureType.BadDocs,
        );
      }
      if (files.includes(MANIFEST)) {
        throw ApplicationFailure.nonRetryable(
          `the docs step wrote ${MANIFEST} at the top of $CONVEYOR_OUT; that name is Conveyor's manifest of the site`,
          FailureType.BadDocs,
        );
      }
      // eslint-disable-next-line no-control-regex
      const unsafe = files.find((f) => /[\x00-\x1f\x7f\\]/.test(f));
      if (unsafe) {
        throw ApplicationFailure.nonRetryable(
          `docs file ${JSON.stringify(unsafe)}: control characters and backslashes cannot be part of a URL path`,
          FailureType.BadDocs,
        );
      }

      const entries = new Array<DocsManifest['files'][number]>(files.length);
      let next = 0;
      let done = 0;
      let failed = false;
      const worker = async () => {
        // Stop taking files once one upload failed: the workspace goes away when the error leaves.
        while (!failed && next < files.length) {
          const i = next++;
          const rel = files[i];
          try {
            const stored = await storeObject(
              deps.s3,
              deps.artifactsBucket,
              docsKey(deps.artifactsPrefix, input, rel),
              { file: path.join(ws.out, rel) },
              { contentType: contentType(rel), owner, signal },
            );
            entries[i] = { path: rel, key: stored.key, sha256: stored.sha256, size: stored.size };
          } catch (err) {
            failed = true;
            throw err;
          }
          ws.hooks.heartbeat({ phase: 'upload', done: ++done });
        }
      };
      await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, files.length) }, worker));

      const manifest: DocsManifest = { version: `${version}-${input.build}`, ...identity, files: entries };
      const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
      const stored = await storeObject(
        deps.s3,
        deps.artifactsBucket,
        manifestKey,
        { bytes },
        { contentType: 'application/json', owner, signal },
      );
      if (!stored.written) {
        // Another run finished first: its manifest is the build's docs.
        ws.note(`${manifestKey} was written by a concurrent run; kept`);
        const raced = await readManifest(deps, manifestKey, owner, identity, signal);
        if (raced) return { docs: raced, logKey: ws.logKey };
      }
      ws.note(`stored ${files.length} files and ${manifestKey} (sha256 ${stored.sha256})`);
      return {
        docs: { manifestKey, sha256: stored.sha256, files: entries.length, version: manifest.version, ...identity },
        logKey: ws.logKey,
      };
    });
  };
}

/** The stored manifest's ref when this build's manifest exists; undefined when the key is free.
 * A manifest recorded by another commit (or by nobody) is refused (module comment). */
async function readManifest(
  deps: RunStepDeps,
  key: string,
  owner: Record<string, string>,
  identity: Required<BuildIdentity>,
  signal?: AbortSignal,
): Promise<DocsRef | undefined> {
  let bytes: Buffer;
  let metadata: Record<string, string>;
  try {
    const obj = await deps.s3.send(new GetObjectCommand({ Bucket: deps.artifactsBucket, Key: key }), {
      abortSignal: signal,
    });
    bytes = Buffer.from(await obj.Body!.transformToByteArray());
    metadata = obj.Metadata ?? {};
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
    throw err;
  }
  const sha256 = sha256Hex(bytes);
  adopt(deps.artifactsBucket, { key, sha256, size: bytes.length, written: false, metadata }, owner);
  const manifest = JSON.parse(bytes.toString('utf8')) as DocsManifest;
  return { manifestKey: key, sha256, files: manifest.files.length, version: manifest.version, ...identity };
}

/** Regular files under `root`, as `/`-separated relative paths, sorted; symlinks and others skipped. */
function walk(root: string): { files: string[]; skipped: string[] } {
  const files: string[] = [];
  const skipped: string[] = [];
  const visit = (dir: string, rel: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(dir, name));
      if (st.isDirectory()) visit(path.join(dir, name), p);
      else if (st.isFile()) files.push(p);
      else skipped.push(p);
    }
  };
  visit(root, '');
  return { files, skipped };
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.pdf': 'application/pdf',
};

function contentType(file: string): string {
  return TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}
