// The least-privilege IAM policies under docs/iam/ against the code: every AWS SDK command a role's
// code sends (`new XxxCommand(` of a class imported from @aws-sdk/client-*) needs its IAM actions in
// that role's policy, and a policy grants no action its role's code does not use. A role's code is
// everything its activity factories reach through value imports (type-only imports send nothing).
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

/** Role → its policy document and the modules whose activities run with it (activities/index.ts). */
const ROLES: Record<string, { policy: string; roots: string[] }> = {
  // createBuildActivities: runStep, the packaging activities, runE2e
  builder: {
    policy: 'docs/iam/builder.json',
    roots: ['activities/exec/run-step.ts', 'activities/packaging/index.ts', 'activities/fleet/e2e.ts'],
  },
  // createOrchestratorActivities: createRepositoryActivities (publishing); control, git and github use no AWS
  'orchestrator-publisher': {
    policy: 'docs/iam/orchestrator-publisher.json',
    roots: [
      'activities/repository/index.ts',
      'activities/audit/index.ts',
      'activities/control/index.ts',
      'activities/git/ancestry.ts',
      'activities/git/release.ts',
      'activities/github/commit-status.ts',
    ],
  },
  // createOrchestratorActivities: createFleetActivities (EC2 discovery, SSM, host logs)
  fleet: { policy: 'docs/iam/fleet.json', roots: ['activities/fleet/index.ts'] },
};

/** Code that sends AWS commands but runs with no production role: only ever against the local stack's moto. */
const LOCAL_ONLY = ['cli/local-stack/', 'cli/demo/'];
/** Production code: everything that runs in the workers, the API and the CLI. */
const PRODUCTION_DIRS = ['activities', 'workers', 'api', 'cli', 'common', 'config', 'workflows'];

/**
 * The IAM actions of each SDK command (https://docs.aws.amazon.com/service-authorization/latest/reference/).
 * HeadObject needs s3:ListBucket as well: without it S3 answers 403, not 404, for a missing key, and
 * our code reads a 404 as "not there yet".
 */
const ACTIONS: Record<string, string[]> = {
  's3:PutObject': ['s3:PutObject'],
  // A server-side copy: GetObject on the source (the artifacts bucket), PutObject on the destination.
  's3:CopyObject': ['s3:GetObject', 's3:PutObject'],
  's3:GetObject': ['s3:GetObject'],
  's3:HeadObject': ['s3:GetObject', 's3:ListBucket'],
  's3:DeleteObject': ['s3:DeleteObject'],
  's3:DeleteObjects': ['s3:DeleteObject'],
  's3:ListObjectsV2': ['s3:ListBucket'],
  's3:CreateMultipartUpload': ['s3:PutObject'],
  's3:UploadPart': ['s3:PutObject'],
  's3:CompleteMultipartUpload': ['s3:PutObject'],
  's3:AbortMultipartUpload': ['s3:AbortMultipartUpload'],
  'ec2:DescribeInstances': ['ec2:DescribeInstances'],
  'ssm:SendCommand': ['ssm:SendCommand'],
  'ssm:GetCommandInvocation': ['ssm:GetCommandInvocation'],
  'ssm:CancelCommand': ['ssm:CancelCommand'],
};

interface CommandUse {
  file: string;
  /** `s3:PutObject`: the service of the client package, the class name without `Command`. */
  command: string;
}

function read(rel: string): string {
  return fs.readFileSync(path.join(ROOT, rel), 'utf8');
}

/** `new XxxCommand(` where XxxCommand is imported (possibly renamed) from @aws-sdk/client-<service>. */
function awsCommandsIn(rel: string, source = read(rel)): CommandUse[] {
  const imported = new Map<string, string>();
  const importRe = /import\s+(type\s+)?\{([^}]*)\}\s+from\s+'@aws-sdk\/client-([a-z0-9-]+)'/g;
  for (const m of source.matchAll(importRe)) {
    if (m[1]) continue;
    for (const spec of m[2].split(',')) {
      const parts = spec
        .trim()
        .replace(/^type\s+/, '')
        .split(/\s+as\s+/);
      if (!parts[0] || spec.trim().startsWith('type ')) continue;
      imported.set(parts[1] ?? parts[0], `${m[3]}:${parts[0]}`);
    }
  }
  const uses: CommandUse[] = [];
  for (const m of source.matchAll(/\bnew\s+([A-Za-z0-9_$]+)\s*\(/g)) {
    const from = imported.get(m[1]);
    if (!from || !from.endsWith('Command')) continue;
    uses.push({ file: rel, command: from.replace(/Command$/, '') });
  }
  return uses;
}

/** Files reached from `roots` through value imports of relative modules. */
function reach(roots: string[]): Set<string> {
  const seen = new Set<string>();
  const queue = [...roots];
  while (queue.length > 0) {
    const rel = queue.pop()!;
    if (seen.has(rel)) continue;
    seen.add(rel);
    const source = read(rel);
    const re = /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?'(\.{1,2}\/[^']+)'/g;
    for (const m of source.matchAll(re)) {
      if (m[2]) continue;
      const target = resolveModule(path.dirname(rel), m[3]);
      if (target) queue.push(target);
    }
  }
  return seen;
}

function resolveModule(fromDir: string, spec: string): string | undefined {
  const base = path.join(fromDir, spec);
  for (const candidate of [`${base}.ts`, path.join(base, 'index.ts'), base]) {
    if (candidate.endsWith('.ts') && fs.existsSync(path.join(ROOT, candidate))) return candidate;
  }
  return undefined;
}

function tsFiles(dir: string): string[] {
  return fs
    .readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)));
}

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: string | string[];
}

function policyActions(rel: string): Set<string> {
  const doc = JSON.parse(read(rel)) as { Version: string; Statement: Statement[] };
  expect(doc.Version).toBe('2012-10-17');
  const actions = new Set<string>();
  for (const s of doc.Statement) {
    expect(s.Effect).toBe('Allow');
    for (const a of [s.Action].flat()) {
      expect(a).not.toContain('*');
      actions.add(a);
    }
  }
  return actions;
}

describe('IAM policies in docs/iam/', () => {
  it('the scanner finds commands, renamed imports included, and ignores type-only imports', () => {
    const src = `
import { PutObjectCommand as Put, type GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { HeadObjectCommand } from '@aws-sdk/client-s3';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
new Put({}); new S3Client({}); new SendCommandCommand({}); new HeadObjectCommand({});`;
    expect(awsCommandsIn('x.ts', src).map((u) => u.command)).toEqual(['s3:PutObject', 'ssm:SendCommand']);
  });

  const production = PRODUCTION_DIRS.flatMap(tsFiles);
  const sending = production.filter((f) => awsCommandsIn(f).length > 0);
  const reached = Object.fromEntries(Object.entries(ROLES).map(([role, r]) => [role, reach(r.roots)]));

  it('every production file that sends AWS commands runs under a role (or only against the local stack)', () => {
    expect(sending.length).toBeGreaterThan(5);
    const orphans = sending.filter(
      (f) => !LOCAL_ONLY.some((p) => f.startsWith(p)) && !Object.values(reached).some((files) => files.has(f)),
    );
    expect(orphans).toEqual([]);
  });

  it('every command found has its IAM actions listed in this test', () => {
    const serving = sending.filter((f) => !LOCAL_ONLY.some((p) => f.startsWith(p)));
    const unmapped = [...new Set(serving.flatMap((f) => awsCommandsIn(f).map((u) => u.command)))].filter(
      (c) => !ACTIONS[c],
    );
    expect(unmapped).toEqual([]);
  });

  for (const [role, { policy }] of Object.entries(ROLES)) {
    it(`${role}: ${policy} grants exactly the actions its code uses`, () => {
      const uses = [...reached[role]].flatMap((f) => awsCommandsIn(f));
      const needed = new Map<string, string[]>();
      for (const u of uses) {
        for (const action of ACTIONS[u.command] ?? [`(unmapped ${u.command})`]) {
          needed.set(action, [...(needed.get(action) ?? []), `${u.file} ${u.command}`]);
        }
      }
      const granted = policyActions(policy);
      const missing = [...needed].filter(([a]) => !granted.has(a)).map(([a, by]) => `${a} (used by ${by.join(', ')})`);
      const unused = [...granted].filter((a) => !needed.has(a));
      expect({ missing, unused }).toEqual({ missing: [], unused: [] });
    });
  }
});
