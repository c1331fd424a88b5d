// The hand-written documents under docs/ name commands, options and configuration keys: each must
// exist. Commands and options are checked against the CLI's own --help, keys against the schema
// (the rows of the generated configuration reference).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { referenceRows } from '../../scripts/config-reference';

const ROOT = path.resolve(__dirname, '..', '..');
const DOCS = ['architecture.md', 'operations.md', 'production.md'].map((f) => path.join(ROOT, 'docs', f));

/** Inline code spans and fenced blocks: where commands and keys are written. */
function codeOf(text: string): string[] {
  const fenced = [...text.matchAll(/^```[a-z]*\n([\s\S]*?)^```/gm)].map((m) => m[1]);
  const inline = [...text.replace(/^```[\s\S]*?^```/gm, '').matchAll(/`([^`]+)`/g)].map((m) =>
    m[1].replace(/\s+/g, ' '),
  );
  return [...fenced.flatMap((b) => b.split('\n')), ...inline];
}

/**
 * The help text of every `conveyor` command, from one process: cli/main.ts builds its commander
 * program and calls parseAsync() at load, so parseAsync is swapped for a walk over the program's
 * commands (`repo rollback` as a key), each printed with commander's own helpInformation().
 */
function helpTexts(): Map<string, string> {
  const script = `
    const { Command } = require('commander');
    Command.prototype.parseAsync = function () {
      const out = {};
      const walk = (cmd, prefix) => {
        out[prefix] = cmd.helpInformation();
        for (const sub of cmd.commands) walk(sub, (prefix ? prefix + ' ' : '') + sub.name());
      };
      walk(this, '');
      process.stdout.write(JSON.stringify(out));
      return Promise.resolve(this);
    };
    require('./cli/main.ts');
  `;
  const stdout = execFileSync(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return new Map(Object.entries(JSON.parse(stdout) as Record<string, string>));
}

const code = DOCS.flatMap((f) => codeOf(fs.readFileSync(f, 'utf8')).map((c) => ({ file: path.basename(f), c })));

describe('docs/: commands, options and keys that exist', () => {
  it('names only conveyor commands and options that the CLI has', () => {
    const problems: string[] = [];
    const uses = code.flatMap(({ file, c }) =>
      [...c.matchAll(/(?:^|[\s(])conveyor ((?:repo )?[a-z]+)([^#|]*)/g)].map((m) => ({
        file,
        command: m[1],
        rest: m[2],
      })),
    );
    expect(uses.length).toBeGreaterThan(20);
    const help = helpTexts();
    const exists = (command: string) => help.has(command) && command !== 'repo';
    for (const { file, command, rest } of uses) {
      if (!exists(command)) {
        problems.push(`${file}: conveyor ${command}: no such command`);
        continue;
      }
      const own = help.get(command)!;
      for (const flag of rest.match(/--[a-z][a-z-]*/g) ?? []) {
        if (!own.includes(flag)) problems.push(`${file}: conveyor ${command} ${flag}: no such option`);
      }
    }
    expect(problems).toEqual([]);
  }, 120_000);

  it('names only configuration keys that the schema has', () => {
    const rows = referenceRows();
    const tops = new Set(rows.filter((r) => !/[.[]/.test(r.path)).map((r) => r.path));
    const known = rows.map(
      (r) =>
        new RegExp(
          `^${r.path
            .replace(/\[\]/g, '')
            .replace(/[.*+?^${}()|\\]/g, '\\$&')
            .replace(/<[^>]+>/g, '[^.]+')}$`,
        ),
    );
    const keys = code
      .map(({ file, c }) => ({ file, c: c.trim() }))
      .filter(({ c }) => /^[a-z][A-Za-z]*(\.[A-Za-z<>[\]{}, ]+)+$/.test(c) && tops.has(c.split('.')[0]))
      // File names (fleet.json, production.md) are not keys.
      .filter(({ c }) => !/\.(json|md|ya?ml|ts|js|service|env|conf)$/.test(c))
      .flatMap(({ file, c }) => {
        const brace = /^(.*)\.\{([^}]+)\}$/.exec(c);
        const paths = brace ? brace[2].split(',').map((k) => `${brace[1]}.${k.trim()}`) : [c];
        return paths.map((p) => ({ file, key: p.replace(/\[\]/g, '') }));
      });
    expect(keys.length).toBeGreaterThan(10);
    const unknown = keys
      .filter(({ key }) => !known.some((re) => re.test(key)))
      .map(({ file, key }) => `${file}: ${key}`);
    expect(unknown).toEqual([]);
  });
});
