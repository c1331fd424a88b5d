// docs/configuration.md is generated from the zod schema of conveyor.yml (config/conveyor.ts): every
// key with its type, default and the `.describe()` text written beside it in the schema. The schema
// is the one source, so the reference cannot fall behind it: test/unit/config-reference.test.ts
// renders it again in memory and fails when the committed file differs or a key has no text.
//
//   npm run docs:config            rewrite docs/configuration.md
//   npm run docs:config -- --check exit 1 when docs/configuration.md is out of date
//
// It walks the schema's JSON Schema (zod's toJSONSchema, input side: what a user writes, before
// defaults and transforms), not zod's internals. The output goes through prettier with the
// project's settings (.prettierrc.json), so `prettier --check .` and this generator agree on every byte.
import fs from 'node:fs';
import path from 'node:path';
// The standalone build: the main entry loads its parsers with import(), which jest's CommonJS
// runtime cannot do, and the drift test renders this in memory.
import * as markdown from 'prettier/plugins/markdown';
import * as prettier from 'prettier/standalone';
import { z } from 'zod';
import { conveyorSchema } from '../config/conveyor';

export const REFERENCE_FILE = path.resolve(__dirname, '..', 'docs', 'configuration.md');

/** One documented key. */
export interface ReferenceRow {
  /** `api.statusPort`, `repositories[].branches[].match`, `distros.<distro>.arch`. */
  path: string;
  type: string;
  required: boolean;
  /** JSON of the default, when the schema has one. */
  default?: string;
  description?: string;
}

/** A JSON Schema node as zod writes it (only the parts read here). */
interface Node {
  type?: string;
  description?: string;
  default?: unknown;
  properties?: Record<string, Node>;
  required?: string[];
  additionalProperties?: Node | boolean;
  items?: Node;
  anyOf?: Node[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  minItems?: number;
}

/** How a record's keys are named in a path, by the record's own path. */
const RECORD_KEYS: Record<string, string> = {
  distros: '<distro>',
  'chat.groups': '<group>',
  'chat.access': '<repository>',
  'chat.access.<repository>': '<user or group:name>',
  'repositories[].staging.tags': '<tag>',
};

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** String patterns of the schema that have a name a reader knows. */
const NAMED_PATTERNS: Record<string, string> = {
  '^[A-Z_][A-Z0-9_]*$': 'env var name',
  '^s3:\\/\\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\\/.*)?$': 's3:// URL',
};

function typeOf(n: Node): string {
  if (n.anyOf) return n.anyOf.map(typeOf).join(' or ');
  if (n.enum) return n.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  if (n.const !== undefined) return JSON.stringify(n.const);
  if (n.type === 'array') return `list of ${n.items ? typeOf(n.items) : 'values'}`;
  if (n.type === 'object') return n.properties ? 'object' : `map of ${typeOfRecordValue(n)}`;
  if (n.type === 'string' && n.format === 'uri') return 'URL';
  if (n.type === 'string' && n.pattern && NAMED_PATTERNS[n.pattern]) return NAMED_PATTERNS[n.pattern];
  if (n.type === 'integer' || n.type === 'number') return `${n.type}${range(n)}`;
  return n.type ?? 'any';
}

function typeOfRecordValue(n: Node): string {
  return typeof n.additionalProperties === 'object' ? typeOf(n.additionalProperties) : 'values';
}

function range(n: Node): string {
  const min =
    n.exclusiveMinimum !== undefined ? `> ${n.exclusiveMinimum}` : n.minimum !== undefined ? `≥ ${n.minimum}` : '';
  const max = n.maximum !== undefined && n.maximum !== MAX_SAFE ? `≤ ${n.maximum}` : '';
  const parts = [min, max].filter(Boolean);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

/** Every key of the schema, depth first in the schema's own order. */
export function referenceRows(): ReferenceRow[] {
  const root = z.toJSONSchema(conveyorSchema, { io: 'input', unrepresentable: 'any' }) as Node;
  const rows: ReferenceRow[] = [];
  const visit = (n: Node, at: string, required: boolean): void => {
    rows.push({
      path: at,
      type: typeOf(n),
      required,
      // An object's default is its keys' defaults, shown on each key.
      ...(n.default !== undefined && !n.properties ? { default: JSON.stringify(n.default) } : {}),
      ...(n.description ? { description: n.description } : {}),
    });
    children(n, at);
  };
  const children = (n: Node, at: string): void => {
    // A union documents the members of its object options (signing.validDays.staging).
    for (const option of n.anyOf ?? []) children(option, at);
    for (const [key, child] of Object.entries(n.properties ?? {})) {
      visit(child, at ? `${at}.${key}` : key, (n.required ?? []).includes(key));
    }
    if (n.type === 'object' && typeof n.additionalProperties === 'object') {
      const value = n.additionalProperties;
      if (value.properties || value.additionalProperties) {
        visit(value, `${at}.${RECORD_KEYS[at] ?? '<key>'}`, false);
      }
    }
    if (n.type === 'array' && n.items?.properties) children(n.items, `${at}[]`);
  };
  children(root, '');
  return rows;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function table(rows: ReferenceRow[]): string {
  const lines = ['| key | type | default | description |', '| --- | --- | --- | --- |'];
  for (const r of rows) {
    const def = r.default !== undefined ? `\`${cell(r.default)}\`` : r.required ? '**required**' : '';
    lines.push(`| \`${r.path}\` | ${r.type} | ${def} | ${cell(r.description ?? '')} |`);
  }
  return lines.join('\n');
}

const INTRO = `# Configuration reference (conveyor.yml)

<!-- Generated from the zod schema in config/conveyor.ts by scripts/config-reference.ts
     (npm run docs:config). Do not edit: change the schema's .describe() texts and regenerate. -->

Every entry point (the workers, the API, the \`conveyor\` command) reads one \`conveyor.yml\`: \`--config FILE\`, else
\`CONVEYOR_CONFIG\`, else \`./conveyor.yml\`, else \`./conveyor.dev.yml\`. A file with an unknown key or a bad value is
refused at start with every problem at once, as \`path.to.key: why\`.

- Secrets are never in this file: keys ending in \`Env\` name the environment variable that holds one, and each
  process gets only its own (see [production.md](production.md#secrets-per-process)).
- Relative paths are taken relative to this file: \`signing.keyFile\`, \`workspace\`, \`fleet.hostsDir\`,
  \`api.spoolDir\`, \`repositories[].cloneUrl\` (a plain path) and the \`repositories[].checkout\` files.
- The environment wins over the file for \`AWS_ENDPOINT_URL\`, \`AWS_REGION\` and the Temporal connection
  (\`TEMPORAL_ADDRESS\`, \`TEMPORAL_NAMESPACE\`, \`TEMPORAL_API_KEY\`, \`TEMPORAL_TLS*\`; then this file, then the
  Temporal CLI's profile file).
- In a path, \`[]\` stands for every item of a list and \`<…>\` for a key you choose. "required" keys have no
  default; a key without a default and not required may be left out.
`;

/** Sections: one per top-level key, in the schema's order. */
function render(rows: ReferenceRow[]): string {
  const sections: string[] = [INTRO];
  const tops = rows.filter((r) => !r.path.includes('.') && !r.path.includes('['));
  for (const top of tops) {
    const own = rows.filter((r) => r.path.startsWith(`${top.path}.`) || r.path.startsWith(`${top.path}[`));
    const kind = `${top.type}, ${top.required ? 'required' : top.default !== undefined ? `default \`${top.default}\`` : 'optional'}`;
    sections.push(
      `## \`${top.path}\`\n\n${top.description ?? ''} Type: ${kind}.\n\n${own.length > 0 ? `${table(own)}\n` : ''}`,
    );
  }
  return sections.join('\n');
}

/** docs/configuration.md as it should be, formatted with the project's prettier settings. */
export async function configReference(): Promise<string> {
  const options = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '.prettierrc.json'), 'utf8')) as Parameters<
    typeof prettier.format
  >[1];
  return prettier.format(render(referenceRows()), { ...options, parser: 'markdown', plugins: [markdown] });
}

async function main(argv: string[]): Promise<void> {
  const wanted = await configReference();
  const current = fs.existsSync(REFERENCE_FILE) ? fs.readFileSync(REFERENCE_FILE, 'utf8') : '';
  const rel = path.relative(process.cwd(), REFERENCE_FILE);
  if (argv.includes('--check')) {
    if (current !== wanted) {
      process.stderr.write(`${rel} is out of date with config/conveyor.ts: run npm run docs:config\n`);
      process.exitCode = 1;
    }
    return;
  }
  if (current === wanted) {
    process.stdout.write(`${rel} is up to date\n`);
    return;
  }
  fs.writeFileSync(REFERENCE_FILE, wanted);
  process.stdout.write(`wrote ${rel}\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
