import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig, parseS3Url, repositorySpec, resolveConfigPath } from '../../config/conveyor';
import { loadDevConfig } from '../../config/temporal-dev';
import { shutdownGraceSeconds } from '../../workers/create';
import { testTempDir } from '../helpers/temp';

const ROOT = path.resolve(__dirname, '..', '..');

function write(text: string): string {
  const dir = testTempDir('conveyor-config-');
  const file = path.join(dir, 'conveyor.yml');
  fs.writeFileSync(file, text);
  return file;
}

const VALID = `
storage: { artifacts: s3://a-bucket, staging: s3://s-bucket, production: s3://p-bucket }
distros:
  bookworm: { format: deb, codename: bookworm, arch: amd64 }
repositories:
  - name: acme/widget
    cloneUrl: repos/widget.git
    branches: [{ match: main, channel: unstable }, { match: 'v*.*', channel: stable, release: true }]
    steps: { unit: make test }
    distros: [bookworm]
`;

describe('conveyor.yml loader', () => {
  it('loads the committed conveyor.dev.yml and temporal-dev.yml', () => {
    const cfg = loadConfig(path.join(ROOT, 'conveyor.dev.yml'), {});
    expect(cfg.repositories[0].name).toBe('demo/widget');
    expect(cfg.repositories[0].cloneUrl).toBe(path.join(ROOT, '.dev/demo/widget.git'));
    const dev = loadDevConfig(path.join(ROOT, 'temporal-dev.yml'));
    expect(dev.temporal.dbFile).toBe(path.join(ROOT, '.dev/temporal.db'));
    expect(dev.temporal.searchAttributes.ConveyorBuild).toBe('Int');
  });

  it('applies defaults, resolves relative clone paths and lets env win for Temporal and AWS', () => {
    const file = write(VALID);
    const cfg = loadConfig(file, { TEMPORAL_ADDRESS: 'temporal.example:7233', AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
    expect(cfg.temporal.address).toBe('temporal.example:7233');
    expect(cfg.temporal.namespace).toBe('default');
    expect(cfg.temporal.taskQueue).toBe('conveyor');
    expect(cfg.aws.endpoint).toBe('http://127.0.0.1:9');
    expect(cfg.github.webhookSecretEnv).toBe('GITHUB_WEBHOOK_SECRET');
    expect(cfg.repositories[0].cloneUrl).toBe(path.join(path.dirname(file), 'repos/widget.git'));
    expect(cfg.repositories[0].branches[0]).toEqual({
      match: 'main',
      channel: 'unstable',
      release: false,
      approval: false,
      supersede: true,
    });
  });

  it('reports every problem at once as path: message', () => {
    const file = write(`
storage: { artifacts: not-s3, staging: s3://s-bucket, production: s3://p-bucket }
distros: { bookworm: { format: zip, arch: amd64 } }
repositories:
  - name: widget
    cloneUrl: x
    branches: [{ match: main, channel: unstable }, { match: '/[unclosed/', channel: stable }]
    steps: { unit: make test, deploy: rm -rf / }
    distros: [bookworm, el9]
`);
    let err: unknown;
    try {
      loadConfig(file, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/^storage\.artifacts: must be s3:\/\/<bucket>\[\/prefix\]$/m);
    expect(problems).toMatch(/^distros\.bookworm\.format: /m);
    expect(problems).toMatch(/^repositories\[0\]\.name: must be a GitHub full_name/m);
    expect(problems).toMatch(/^repositories\[0\]\.branches\[1\]\.match: invalid regex/m);
    expect(problems).toMatch(/^repositories\[0\]\.steps: .*deploy/m);
    expect((err as Error).message).toContain(file);
  });

  it('names the unknown distro of a repository', () => {
    const file = write(VALID.replace('distros: [bookworm]', 'distros: [bookworm, el9]'));
    expect(() => loadConfig(file, {})).toThrow(
      /repositories\[0\]\.distros\[1\]: unknown distro "el9" \(known: bookworm\)/,
    );
  });

  it('refuses YAML syntax errors and unreadable files with the path', () => {
    expect(() => loadConfig(write('storage: [unclosed'), {})).toThrow(/line \d+/);
    expect(() => loadConfig('/nonexistent/conveyor.yml', {})).toThrow(
      /\/nonexistent\/conveyor.yml: invalid configuration\n {2}cannot read the file \(ENOENT\)/,
    );
  });

  it('refuses a temporal-dev.yml that lacks a search attribute the workflows set', () => {
    const text = fs.readFileSync(path.join(ROOT, 'temporal-dev.yml'), 'utf8').replace(/ {4}ConveyorBuild: Int\n/, '');
    const dir = testTempDir('conveyor-dev-');
    fs.writeFileSync(path.join(dir, 'temporal-dev.yml'), text);
    expect(() => loadDevConfig(path.join(dir, 'temporal-dev.yml'))).toThrow(
      /temporal\.searchAttributes\.ConveyorBuild: must be Int/,
    );
  });

  it('picks --config, then CONVEYOR_CONFIG, then the file in the directory', () => {
    expect(resolveConfigPath('a.yml', { CONVEYOR_CONFIG: 'b.yml' }, '/x')).toBe('/x/a.yml');
    expect(resolveConfigPath(undefined, { CONVEYOR_CONFIG: 'b.yml' }, '/x')).toBe('/x/b.yml');
    expect(resolveConfigPath(undefined, {}, ROOT)).toBe(path.join(ROOT, 'conveyor.dev.yml'));
  });

  it('gives a repository its own name as its package by default, and checks listed packages', () => {
    const spec = (text: string) => {
      const cfg = loadConfig(write(text), {});
      return repositorySpec(cfg, cfg.repositories[0], cfg.repositories[0].branches[0]);
    };
    expect(spec(VALID).packages).toEqual(['widget']);
    expect(spec(`${VALID}    packages: [widget, widget-doc, Widget_Tools]\n`).packages).toEqual([
      'widget',
      'widget-doc',
      'Widget_Tools',
    ]);
    const problems = (text: string) => {
      try {
        loadConfig(write(text), {});
      } catch (e) {
        return (e as ConfigError).problems.join('\n');
      }
      throw new Error('accepted');
    };
    expect(problems(`${VALID}    packages: ['bad name', widget, widget, '-x']\n`)).toMatch(
      /^repositories\[0\]\.packages\[0\]: must be a package name[\s\S]*^repositories\[0\]\.packages\[3\]: must be a package name/m,
    );
    expect(problems(`${VALID}    packages: [widget, widget]\n`)).toMatch(
      /^repositories\[0\]\.packages\[1\]: duplicate of widget$/m,
    );
    expect(problems(`${VALID}    packages: []\n`)).toMatch(/^repositories\[0\]\.packages: needs at least one/m);
    expect(problems(`${VALID}    packaging: { builtin: { name: tally, maintainer: m, description: d } }\n`)).toMatch(
      /^repositories\[0\]\.packaging\.builtin\.name: package "tally" is not among acme\/widget's packages \(packages: \[widget\]\); add it to repositories\[0\]\.packages$/m,
    );
    expect(problems(VALID.replace('acme/widget', 'acme/_widget'))).toMatch(
      /^repositories\[0\]\.packages: the default package name "_widget"/m,
    );
  });

  it('parses s3 URLs', () => {
    expect(parseS3Url('s3://bucket')).toEqual({ bucket: 'bucket', prefix: '' });
    expect(parseS3Url('s3://bucket/some/prefix')).toEqual({ bucket: 'bucket', prefix: 'some/prefix/' });
  });

  it('sizes the workers: shutdown grace from the longest step, a cap on concurrent steps', () => {
    const cfg = loadConfig(write(VALID), {});
    expect(cfg.workers).toEqual({
      maxConcurrentActivities: 4,
      orchestratorMaxConcurrentActivities: 100,
      maxCachedWorkflows: 100,
      metricsHost: '127.0.0.1',
    });
    expect(() => loadConfig(write(`${VALID}\nworkers: { maxCachedWorkflows: 1 }\n`), {})).toThrow(
      /workers\.maxCachedWorkflows/,
    );
    // Prometheus endpoints are off unless asked for; a port out of range is refused.
    const metrics = loadConfig(write(`${VALID}\nworkers: { metricsPort: 9464, builderMetricsPort: 9465 }\n`), {});
    expect(metrics.workers).toMatchObject({ metricsPort: 9464, builderMetricsPort: 9465 });
    expect(() => loadConfig(write(`${VALID}\nworkers: { metricsPort: 70000 }\n`), {})).toThrow(/workers\.metricsPort/);
    expect(shutdownGraceSeconds(cfg)).toBe(1800 + 60);
    const set = loadConfig(write(`${VALID}\nworkers: { shutdownGraceSeconds: 90, maxConcurrentActivities: 2 }\n`), {});
    expect(shutdownGraceSeconds(set)).toBe(90);
    expect(set.workers.maxConcurrentActivities).toBe(2);
  });
});
