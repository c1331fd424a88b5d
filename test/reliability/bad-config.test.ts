// Fault suite, scenario 9: broken conveyor.yml files are refused at start, each problem named by
// the path of the bad key and the reason. Twenty files break the schema or the YAML (refused by
// loadConfig, config/conveyor.ts, whichever entry point loads them) and two more break only the
// start paths' own checks (config/production.ts: the orchestrator's local-executor refusal, the
// API's unauthenticated status listener). Every file is loaded in-process (the exact list of
// problems is asserted), and started as a real process: each file through one entry point in turn
// (orchestrator, builder, API, CLI), which must exit 1 with the same lines before it connects to
// anything. CONVEYOR_BAD_CONFIG_ALL=1 starts every file through every entry point (slower).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { ROOT } from '../../cli/local-stack/tools';
import { ConfigError, loadConfig } from '../../config/conveyor';
import { entry } from '../helpers/entry';
import { tempDir } from '../helpers/stack';

type Entry = 'orchestrator' | 'builder' | 'api' | 'cli';
type Doc = Record<string, unknown> & {
  repositories: Record<string, unknown>[];
  [k: string]: unknown;
};

const ALL = process.env.CONVEYOR_BAD_CONFIG_ALL === '1';
const ENTRIES: Entry[] = ['orchestrator', 'builder', 'api', 'cli'];
// By default each file starts one process: the workers (about 4 s of CPU each to start) take the
// first files, the API and the CLI (about 2 s) the rest in turn.
const ONE_EACH: Entry[] = ['orchestrator', 'builder', 'orchestrator', 'builder'];

function base(): Doc {
  return {
    temporal: { address: '127.0.0.1:1' },
    storage: { artifacts: 's3://a-bucket', staging: 's3://s-bucket', production: 's3://p-bucket' },
    distros: { bookworm: { format: 'deb', codename: 'bookworm', arch: 'amd64' } },
    repositories: [
      {
        name: 'acme/widget',
        cloneUrl: '/srv/git/widget.git',
        branches: [{ match: 'main', channel: 'unstable' }],
        steps: { unit: 'make test', package: 'make package' },
        distros: ['bookworm'],
      },
    ],
  };
}

interface Case {
  name: string;
  /** A change to the valid base document, or the whole file's text. */
  doc: ((d: Doc) => void) | string;
  /** Every problem the loader reports, exactly. */
  problems?: string[];
  /** Refused by a start path's own checks (the loader accepts the file): entry and a fragment. */
  startPath?: { entry: Entry; says: string };
}

const repo = (d: Doc) => d.repositories[0];

const CASES: Case[] = [
  {
    name: 'artifacts bucket not an s3 URL',
    doc: (d) => ((d.storage as Record<string, string>).artifacts = 'https://a-bucket'),
    problems: ['storage.artifacts: must be s3://<bucket>[/prefix]'],
  },
  {
    name: 'production bucket missing',
    doc: (d) => delete (d.storage as Record<string, string>).production,
    problems: ['storage.production: Invalid input: expected string, received undefined'],
  },
  {
    name: 'unknown package format',
    doc: (d) => ((d.distros as Record<string, Record<string, string>>).bookworm.format = 'zip'),
    problems: ['distros.bookworm.format: Invalid option: expected one of "deb"|"rpm"'],
  },
  {
    name: 'distro name in capitals',
    doc: (d) => {
      d.distros = { Bookworm: { format: 'deb', arch: 'amd64' } };
      repo(d).distros = ['Bookworm'];
    },
    problems: [
      'distros.Bookworm: distro names are lowercase letters, digits and dashes (they name the build-<distro> queues)',
    ],
  },
  {
    name: 'repository name without owner',
    doc: (d) => (repo(d).name = 'widget'),
    problems: ['repositories[0].name: must be a GitHub full_name such as acme/widget'],
  },
  {
    name: 'credentials in the clone URL',
    doc: (d) => (repo(d).cloneUrl = 'https://bot:ghp_secret@github.com/acme/widget.git'),
    problems: [
      'repositories[0].cloneUrl: contains a user name and password: credentials in a URL end up in workflow inputs, logs and .git/config. ' +
        'Remove them and reference the credential with checkout.tokenEnv (an env var holding the token), ' +
        'checkout.sshKeyFile or checkout.githubApp',
    ],
  },
  {
    name: 'branch rule with an invalid regex',
    doc: (d) => (repo(d).branches = [{ match: '/release-(/', channel: 'stable' }]),
    problems: [
      'repositories[0].branches[0].match: invalid regex (Invalid regular expression: /release-(/: Unterminated group)',
    ],
  },
  {
    name: 'channel in capitals',
    doc: (d) => (repo(d).branches = [{ match: 'main', channel: 'Unstable' }]),
    problems: ['repositories[0].branches[0].channel: must be a lowercase channel name such as unstable or stable'],
  },
  {
    name: 'no branch rule',
    doc: (d) => (repo(d).branches = []),
    problems: ['repositories[0].branches: needs at least one branch rule'],
  },
  {
    name: 'a step conveyor does not run',
    doc: (d) => (repo(d).steps = { unit: 'make test', deploy: 'rm -rf /' }),
    problems: ['repositories[0].steps: Unrecognized key: "deploy"'],
  },
  {
    name: 'repository names an unknown distro',
    doc: (d) => (repo(d).distros = ['bookworm', 'el9']),
    problems: ['repositories[0].distros[1]: unknown distro "el9" (known: bookworm)'],
  },
  {
    name: 'staging batch of zero hosts',
    doc: (d) => (repo(d).staging = { tags: { Role: 'widget' }, batchSize: 0 }),
    problems: ['repositories[0].staging.batchSize: Too small: expected number to be >0'],
  },
  {
    name: 'two checkout credentials',
    doc: (d) => (repo(d).checkout = { tokenEnv: 'WIDGET_TOKEN', sshKeyFile: '/etc/conveyor/deploy-key' }),
    problems: ['repositories[0].checkout: set exactly one of tokenEnv, sshKeyFile and githubApp'],
  },
  {
    name: 'a package listed twice',
    doc: (d) => (repo(d).packages = ['widget', 'widget-tools', 'widget']),
    problems: ['repositories[0].packages[2]: duplicate of widget'],
  },
  {
    name: 'the same repository twice',
    doc: (d) => d.repositories.push({ ...repo(d) }),
    problems: ['repositories[1].name: duplicate of repositories[0]'],
  },
  {
    name: 'steps as root',
    doc: (d) => (d.sandbox = { uid: 0, gid: 0 }),
    problems: [
      'sandbox.uid: must not be 0: steps never run as root',
      'sandbox.gid: must not be 0: steps never run as root',
    ],
  },
  {
    name: 'body buffer smaller than one body',
    doc: (d) => (d.api = { maxBodyBytes: 1048576, maxBufferedBytes: 65536 }),
    problems: ['api.maxBufferedBytes: must be at least maxBodyBytes (1048576), or no body of the largest size fits'],
  },
  {
    name: 'token env var that is no env var name',
    doc: (d) => (d.github = { tokenEnv: 'github-token' }),
    problems: ['github.tokenEnv: must be an environment variable name'],
  },
  {
    name: 'unknown top-level key',
    doc: (d) => (d.repos = []),
    problems: ['(top level): Unrecognized key: "repos"'],
  },
  {
    name: 'YAML syntax error',
    doc: 'storage:\n\tartifacts: s3://a-bucket\n',
    problems: ['line 2: Tabs are not allowed as indentation at line 2, column 1:'],
  },
  {
    name: 'local host executor against a real AWS endpoint',
    doc: (d) => {
      d.aws = { region: 'us-east-1', endpoint: 'https://s3.example.com' };
      d.fleet = { hostsDir: 'hosts' };
    },
    startPath: {
      entry: 'orchestrator',
      says: 'fleet.hostsDir is set but aws.endpoint https://s3.example.com is not on loopback',
    },
  },
  {
    name: 'status listener beyond loopback without a token',
    doc: (d) => (d.api = { statusHost: '0.0.0.0' }),
    startPath: {
      entry: 'api',
      says: 'api.statusHost 0.0.0.0 serves /runs and /metrics without authentication beyond this machine',
    },
  },
];

/** What an entry point says and its exit code, started as an operator would, with nothing to reach. */
function start(name: Entry, file: string): Promise<{ code: number | null; said: string; ms: number }> {
  const started = {
    orchestrator: () => entry('orchestrator', ['--config', file]),
    builder: () => entry('builder', ['--config', file]),
    api: () => entry('api', ['--config', file, '--port', '0', '--status-port', '0']),
    cli: () => entry('cli', ['--config', file, 'list']),
  }[name]();
  const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1', AWS_ENDPOINT_URL: '' };
  for (const k of ['CONVEYOR_CONFIG', 'GITHUB_WEBHOOK_SECRET', 'GITHUB_TOKEN', 'TEMPORAL_NAMESPACE']) delete env[k];
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(started.command, started.args, { cwd: ROOT, env, timeout: 60000 }, (err, stdout, stderr) => {
      // The workers log JSON lines (pino): what they say is the `msg` of each.
      const said = `${stdout}${stderr}`
        .split('\n')
        .map((l) => {
          if (!l.startsWith('{')) return l;
          try {
            const msg = (JSON.parse(l) as { msg?: unknown }).msg;
            return typeof msg === 'string' ? msg : l;
          } catch {
            return l;
          }
        })
        .join('\n');
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, said, ms: Date.now() - t0 });
    });
  });
}

/** Runs `fn` over `items`, `n` at a time (two cores are shared with other tests' processes). */
async function pool<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
      }
    }),
  );
  return out;
}

describe('reliability: broken conveyor.yml files are refused at start', () => {
  const dir = tempDir('bad-config');
  const files = CASES.map((c, i) => {
    const file = path.join(dir, `bad-${String(i + 1).padStart(2, '0')}.yml`);
    let text: string;
    if (typeof c.doc === 'string') text = c.doc;
    else {
      const d = base();
      c.doc(d);
      text = stringify(d);
    }
    fs.writeFileSync(file, text);
    return file;
  });

  it('has twenty files the loader refuses and two only the start paths refuse', () => {
    expect(CASES.filter((c) => c.problems)).toHaveLength(20);
    expect(CASES.filter((c) => c.startPath)).toHaveLength(2);
    // The base document itself is valid: each refusal is the change's doing.
    const ok = path.join(dir, 'valid.yml');
    fs.writeFileSync(ok, stringify(base()));
    expect(loadConfig(ok, {}).repositories[0].name).toBe('acme/widget');
  });

  it.each(CASES.map((c, i) => [c.name, i] as const))('loader: %s', (_name, i) => {
    const c = CASES[i];
    let err: unknown;
    try {
      loadConfig(files[i], {});
    } catch (e) {
      err = e;
    }
    if (c.startPath) {
      expect(err).toBeUndefined();
      return;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual(c.problems);
    expect((err as Error).message).toBe(
      `${files[i]}: invalid configuration\n${c.problems!.map((p) => `  ${p}`).join('\n')}`,
    );
  });

  it('the entry points refuse them at start, exit 1, with the path and the reason', async () => {
    const runs = CASES.flatMap((c, i) =>
      c.startPath
        ? [{ i, entry: c.startPath.entry }]
        : ALL
          ? ENTRIES.map((entry) => ({ i, entry }))
          : [{ i, entry: ONE_EACH[i] ?? ENTRIES[2 + (i % 2)] }],
    );
    const t0 = Date.now();
    const results = await pool(runs, 3, async (r) => ({ ...r, ...(await start(r.entry, files[r.i])) }));
    for (const r of results) {
      const c = CASES[r.i];
      const lines = c.startPath ? [c.startPath.says] : [`${files[r.i]}: invalid configuration`, ...c.problems!];
      const seen = { file: path.basename(files[r.i]), entry: r.entry, code: r.code };
      expect(seen).toEqual({ ...seen, code: 1 });
      for (const line of lines)
        expect({ ...seen, said: r.said }).toEqual({ ...seen, said: expect.stringContaining(line) });
      // Refused before connecting: nothing tried the (unreachable) Temporal address.
      expect(r.said).not.toMatch(/127\.0\.0\.1:1\b|worker started|listening/);
    }
    const perEntry = Object.fromEntries(
      ENTRIES.map((e) => {
        const mine = results.filter((r) => r.entry === e);
        return [e, { files: mine.length, medianMs: mine.map((r) => r.ms).sort((a, b) => a - b)[mine.length >> 1] }];
      }),
    );
    process.stdout.write(
      `bad-config figures: ${JSON.stringify({ files: CASES.length, starts: results.length, seconds: ((Date.now() - t0) / 1000).toFixed(1), perEntry })}\n`,
    );
  });
});
