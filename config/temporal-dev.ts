// temporal-dev.yml: the local stack (Temporal dev server, local AWS endpoint, API, workers).
// Tools and scripts read ports from this file only.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { SEARCH_ATTRIBUTES } from '../common/search-attributes';
import { ConfigError, parseYamlWithSchema } from './conveyor';

const port = z.number().int().min(1).max(65535);

export const devSchema = z
  .object({
    temporal: z
      .object({
        port,
        uiPort: port,
        httpPort: port,
        metricsPort: port,
        namespace: z.string().min(1),
        dbFile: z.string().min(1),
        searchAttributes: z.record(
          z.string(),
          z.enum(['Keyword', 'Int', 'Text', 'Bool', 'Datetime', 'Double', 'KeywordList']),
        ),
      })
      .strict(),
    aws: z
      .object({
        port,
        region: z.string().min(1),
        /** Storage roles of conveyor.yml (`storage.<role>`) whose buckets anyone may read, as apt and dnf do. */
        publicBuckets: z.array(z.enum(['artifacts', 'staging', 'production'])),
        hosts: z
          .object({ perDistro: z.number().int().min(0).max(16), tags: z.record(z.string(), z.string()).default({}) })
          .strict(),
      })
      .strict(),
    /** The webhook listener's port, and the status listener's (/runs, /metrics; on loopback). */
    api: z.object({ port, statusPort: port.default(3001) }).strict(),
    workers: z.array(z.enum(['orchestrator', 'builder'])),
    /** Each worker process's Prometheus endpoint on 127.0.0.1 (`--metrics-port`); absent: none. */
    metrics: z.object({ orchestrator: port.optional(), builder: port.optional() }).strict().default({}),
    /** Where the stack keeps its state (SQLite file, logs, pid file, demo repository). */
    dataDir: z.string().default('.dev'),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
      if (cfg.temporal.searchAttributes[name] !== type) {
        ctx.addIssue({
          code: 'custom',
          path: ['temporal', 'searchAttributes', name],
          message: `must be ${type} (Conveyor's workflows set it)`,
        });
      }
    }
  });

export type DevConfig = z.infer<typeof devSchema> & { file: string; root: string };

/** Loads temporal-dev.yml; relative paths in it are resolved against the file's directory. */
export function loadDevConfig(file: string): DevConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`]);
  }
  const parsed = parseYamlWithSchema(file, text, devSchema);
  const root = path.dirname(path.resolve(file));
  return {
    ...parsed,
    file: path.resolve(file),
    root,
    dataDir: path.resolve(root, parsed.dataDir),
    temporal: { ...parsed.temporal, dbFile: path.resolve(root, parsed.temporal.dbFile) },
  };
}
