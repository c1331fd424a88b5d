// Records the histories of real runs (a pipeline and all its children) for the replay test:
//   tsx test/replay/record.ts <name> <pipeline workflow ID> [--address HOST:PORT]
// Entity workflows (branch-state, locks) never finish: `--running` records their history so far
//   tsx test/replay/record.ts <name> branch-state/<owner>/<repo>/<branch> --running
// writes test/replay/histories/<name>/<one file per workflow>.json. Record from runs of the code
// being committed; after that, changes to workflow code must keep these histories replaying
// (use patched() for incompatible changes).
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

async function main(): Promise<void> {
  const [name, rootId] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const i = process.argv.indexOf('--address');
  const address = i > 0 ? process.argv[i + 1] : (process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233');
  if (!name || !rootId)
    throw new Error('usage: tsx test/replay/record.ts <name> <pipeline workflow ID> [--address HOST:PORT]');
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  try {
    const dir = path.join(__dirname, 'histories', name);
    fs.mkdirSync(dir, { recursive: true });
    const ids: string[] = [];
    for await (const w of client.workflow.list({ query: `RootWorkflowId = "${rootId.replace(/"/g, '\\"')}"` })) {
      if (w.status.name === 'RUNNING' && !process.argv.includes('--running'))
        throw new Error(`${w.workflowId} still runs: record finished runs only (entities: --running)`);
      ids.push(w.workflowId);
    }
    if (!ids.includes(rootId)) throw new Error(`no workflow ${rootId} at ${address}`);
    for (const id of ids) {
      // Binary protobuf (base64): the JSON forms do not round-trip every field of these histories.
      const history = await client.workflow.getHandle(id).fetchHistory();
      const bytes = temporal.api.history.v1.History.encode(history).finish();
      const file = path.join(dir, `${id.replace(/[^A-Za-z0-9._-]+/g, '_')}.json`);
      fs.writeFileSync(file, JSON.stringify({ workflowId: id, history: Buffer.from(bytes).toString('base64') }) + '\n');
      process.stdout.write(`${file}\n`);
    }
  } finally {
    await connection.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`record: ${(err as Error).message}\n`);
  process.exit(1);
});
