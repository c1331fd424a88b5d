// Docs sites: every version is its own directory inside its channel,
// `docs/<owner>/<repo>/<channel>/<version>/`, and the channel points at one of them:
// `docs/<owner>/<repo>/<channel>/current.json` and `index.html` (a redirect). A version directory
// belongs to the commit that first published it, as a package version does: another commit's site
// under the same `<version>-<build>` in the same channel (two branches with the same VERSION and
// build number) is refused naming both commits, never copied over it. The site is copied
// completely (every file's SHA-256 checked against the manifest, the manifest against its ref)
// before a pointer moves, and the redirect is written last, in one PUT, so a reader always lands
// on a complete site. A completion marker per version lets a second publish of the same site skip
// the copy; a retry after a crash resumes the copy from the last heartbeat.
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { ActivityScope } from './activity-scope';
import { RepositoryFailure, nonRetryable } from './failures';
import type { RepoStore } from './repo-store';
import { getBytes, mapLimit, sha256Hex } from './s3-objects';
import type { PublishDocsInput, PublishDocsResult } from './types';

export interface DocsManifest {
  version: string;
  /** The build that made the site (manifests of older runs lack them). */
  repository?: string;
  branch?: string;
  commit?: string;
  build?: number;
  files: { path: string; key: string; sha256: string; size: number }[];
}

export interface PublishDocsDeps {
  s3: S3Client;
  artifactsBucket: string;
  /** The environment's bucket and prefix (`s3://bucket/prefix`): keys below are relative to it. */
  store: RepoStore;
  scope: ActivityScope;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.pdf': 'application/pdf',
};

export function contentTypeOf(file: string): string {
  return TYPES[path.posix.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function redirectPage(repository: string, channel: string, version: string): string {
  const target = `./${encodeURIComponent(version)}/index.html`;
  const title = escapeHtml(`${repository} documentation (${channel})`);
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${title}</title>`,
    `<meta http-equiv="refresh" content="0; url=${escapeHtml(target)}">`,
    `<link rel="canonical" href="${escapeHtml(target)}">`,
    '</head>',
    `<body><p><a href="${escapeHtml(target)}">${escapeHtml(`${repository} ${version}`)}</a></p></body>`,
    '</html>',
    '',
  ].join('\n');
}

/** A relative path inside the site: no absolute paths, `..`, empty segments or control characters. */
function safeSitePath(p: string): boolean {
  if (typeof p !== 'string' || p === '' || p.startsWith('/') || p.includes('\\')) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(p)) return false;
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

function checkManifest(m: DocsManifest, input: PublishDocsInput): void {
  const problems: string[] = [];
  if (m?.version !== input.docs.version) problems.push(`version ${m?.version} is not ${input.docs.version}`);
  // A site is published by the repository that built it, from the commit its reference names.
  if (m?.repository !== undefined && m.repository !== input.repository)
    problems.push(`it was built by ${m.repository}, not ${input.repository}`);
  if (m?.commit !== undefined && input.docs.commit !== undefined && m.commit !== input.docs.commit)
    problems.push(`it records commit ${m.commit}, its reference ${input.docs.commit}`);
  if (!Array.isArray(m?.files)) problems.push('files is not a list');
  else {
    if (m.files.length !== input.docs.files)
      problems.push(`${m.files.length} files, the reference says ${input.docs.files}`);
    const seen = new Set<string>();
    m.files.forEach((f, i) => {
      if (!safeSitePath(f.path))
        problems.push(`files[${i}].path ${JSON.stringify(f.path)} is not a safe relative path`);
      else if (seen.has(f.path)) problems.push(`files[${i}].path ${f.path} appears twice`);
      seen.add(f.path);
      if (typeof f.key !== 'string' || !f.key) problems.push(`files[${i}].key is missing`);
      if (!/^[0-9a-f]{64}$/i.test(String(f.sha256))) problems.push(`files[${i}].sha256 is not 64 hex digits`);
      if (!Number.isInteger(f.size) || f.size < 0) problems.push(`files[${i}].size is not a size`);
    });
    if (!seen.has('index.html')) problems.push('the site has no index.html at its root (the channel redirects there)');
  }
  if (problems.length > 0) {
    throw nonRetryable(
      RepositoryFailure.BadDocs,
      `docs manifest ${input.docs.manifestKey}: ${problems.slice(0, 10).join('; ')}`,
      { problems },
    );
  }
}

export async function publishDocsSite(deps: PublishDocsDeps, input: PublishDocsInput): Promise<PublishDocsResult> {
  const { s3, store, scope } = deps;
  const signal = scope.signal;
  const { repository, channel, docs } = input;
  const version = docs.version;
  if (!/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(repository) || repository.split('/').some((s) => /^\.+$/.test(s))) {
    throw nonRetryable(RepositoryFailure.BadConfig, `repository ${JSON.stringify(repository)} is not owner/repo`);
  }
  if (!/^[a-z0-9][a-z0-9-]*$/.test(channel)) {
    throw nonRetryable(RepositoryFailure.BadConfig, `channel ${JSON.stringify(channel)} is not a channel name`);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._+~-]*$/.test(version) || ['index.html', 'current.json'].includes(version)) {
    throw nonRetryable(
      RepositoryFailure.BadDocs,
      `docs version ${JSON.stringify(version)} cannot be a directory beside the channel ${channel}`,
    );
  }
  const pointerDir = `docs/${repository}/${channel}/`;
  const site = `${pointerDir}${version}/`;
  const marker = `conveyor-state/docs/${repository}/${channel}/${version}.json`;

  scope.heartbeat({ phase: 'manifest' });
  const raw = await getBytes(s3, deps.artifactsBucket, docs.manifestKey, signal);
  if (!raw || sha256Hex(raw) !== docs.sha256.toLowerCase()) {
    throw nonRetryable(
      RepositoryFailure.ArtifactMismatch,
      raw
        ? `docs manifest s3://${deps.artifactsBucket}/${docs.manifestKey} has SHA-256 ${sha256Hex(raw)}, its reference promises ${docs.sha256}`
        : `docs manifest s3://${deps.artifactsBucket}/${docs.manifestKey} does not exist; re-run the package stage`,
      { key: docs.manifestKey, expected: docs.sha256 },
    );
  }
  let manifest: DocsManifest;
  try {
    manifest = JSON.parse(raw.toString('utf8')) as DocsManifest;
  } catch {
    throw nonRetryable(RepositoryFailure.BadDocs, `docs manifest ${docs.manifestKey} is not JSON`);
  }
  checkManifest(manifest, input);

  const copied: string[] = [];
  let removed: string[] = [];
  const copy = async (f: DocsManifest['files'][number]) => {
    const bytes = await getBytes(s3, deps.artifactsBucket, f.key, signal);
    if (!bytes || bytes.length !== f.size || sha256Hex(bytes) !== f.sha256.toLowerCase()) {
      throw nonRetryable(
        RepositoryFailure.ArtifactMismatch,
        `docs file ${f.path} (s3://${deps.artifactsBucket}/${f.key}) ` +
          (bytes ? `has SHA-256 ${sha256Hex(bytes)}, the manifest promises ${f.sha256}` : 'does not exist'),
        { path: f.path, key: f.key, expected: f.sha256 },
      );
    }
    await store.put(
      `${site}${f.path}`,
      bytes,
      { contentType: contentTypeOf(f.path), immutable: false, metadata: { sha256: f.sha256.toLowerCase() } },
      signal,
    );
    copied.push(`${site}${f.path}`);
  };
  const markerBody = Buffer.from(
    JSON.stringify({
      version,
      manifestSha256: docs.sha256,
      files: manifest.files.length,
      ...(docs.commit ? { commit: docs.commit, branch: docs.branch, build: docs.build } : {}),
    }),
  );
  const liveMarker = await store.get(marker, signal);
  const complete = liveMarker?.equals(markerBody) ?? false;
  if (liveMarker && !complete) {
    const other = JSON.parse(liveMarker.toString('utf8')) as {
      manifestSha256?: string;
      commit?: string;
      branch?: string;
    };
    if (other.manifestSha256 && other.manifestSha256.toLowerCase() !== docs.sha256.toLowerCase()) {
      throw nonRetryable(
        RepositoryFailure.ArtifactConflict,
        `docs ${version} of ${repository} in ${channel} were published from ${other.commit ? `commit ${other.commit} (${other.branch})` : 'another build (commit not recorded)'}; ` +
          `commit ${docs.commit ?? '(unknown)'}${docs.branch ? ` (${docs.branch})` : ''} built other docs under the same version: ` +
          'a published version is never replaced (bump VERSION, or publish the branch to another channel)',
        { version, channel, published: other.commit, incoming: docs.commit },
      );
    }
  }
  if (complete) {
    // Copied before: restore only what has gone missing since (same manifest, so same bytes).
    const there = await store.list(site, signal);
    const lost = manifest.files.filter((f) => there.get(`${site}${f.path}`)?.size !== f.size);
    await mapLimit(lost, 8, copy);
  } else {
    // Resume: files before `done` were written by the attempt that heartbeated it.
    const prev = scope.previousProgress as { phase?: string; manifestSha256?: string; done?: number } | undefined;
    let done = prev?.phase === 'copy' && prev.manifestSha256 === docs.sha256 ? (prev.done ?? 0) : 0;
    const BATCH = 16;
    for (let start = done; start < manifest.files.length; start += BATCH) {
      await mapLimit(manifest.files.slice(start, start + BATCH), 8, copy);
      done = Math.min(start + BATCH, manifest.files.length);
      scope.heartbeat({ phase: 'copy', manifestSha256: docs.sha256, done, total: manifest.files.length });
    }
    // A version directory holds exactly its manifest's files (an earlier copy may have had more).
    const wanted = new Set(manifest.files.map((f) => `${site}${f.path}`));
    removed = [...(await store.list(site, signal)).keys()].filter((k) => !wanted.has(k)).sort();
    await store.delete(removed, signal);
    await store.put(marker, markerBody, { contentType: 'application/json', immutable: false }, signal);
  }
  scope.checkCancelled();

  // The pointers, redirect last: it is what a reader follows.
  const pointers: [string, string, string][] = [
    [
      `${pointerDir}current.json`,
      `${JSON.stringify({ repository, channel, version, path: `./${version}/`, manifestSha256: docs.sha256 }, null, 1)}\n`,
      'application/json',
    ],
    [`${pointerDir}index.html`, redirectPage(repository, channel, version), 'text/html; charset=utf-8'],
  ];
  let switched = false;
  for (const [key, body, contentType] of pointers) {
    const live = await store.get(key, signal);
    if (live?.toString('utf8') === body) continue;
    await store.put(key, Buffer.from(body), { contentType, immutable: false }, signal);
    switched = true;
  }
  scope.info('docs published', { repository, channel, version, copied: copied.length, switched });
  return {
    changed: copied.length > 0 || removed.length > 0 || !complete || switched,
    sitePath: site,
    indexPath: `${pointerDir}index.html`,
    currentPath: `${pointerDir}current.json`,
    copied,
    removed,
    files: manifest.files.length,
  };
}
