// After every test file: the workflows it left running on its own task queues are terminated.
//
// Why: entity workflows outlive the file that started them. A repository's branch-state entity
// (`branch-state/<owner>/<repo>/<branch>`), its locks and any run left waiting for an operator stay
// open on the orchestrator queue of the config that started them (`conveyor-<id>`, testConfig),
// which nobody polls once that file's workers have stopped. A later file that uses the same
// repository and branch (many use acme/widget main) would then send its build-number Update to an
// entity no worker serves, and hang until its timeout: the order of files decided whether the
// suite passed. Terminating what a file leaves behind makes every file start from a clean server,
// whatever ran before it, and no file has to invent names only to dodge its neighbours.
//
// Only this file's queues are touched (recorded by testConfig), so a file running beside it in
// another lane loses nothing. Files that made no config, or ran without the stack, do nothing.
import { fileTaskQueues } from '../helpers/file-queues';

afterAll(async () => {
  const address = process.env.CONVEYOR_TEST_TEMPORAL;
  if (!address || fileTaskQueues.size === 0) return;
  const queues = [...fileTaskQueues];
  fileTaskQueues.clear();
  const { Client, Connection, WorkflowNotFoundError } = await import('@temporalio/client');
  const connection = await Connection.connect({ address });
  try {
    const client = new Client({ connection, namespace: 'default' });
    const query = `ExecutionStatus = 'Running' AND TaskQueue IN (${queues.map((q) => `'${q}'`).join(', ')})`;
    const open: { workflowId: string; runId: string }[] = [];
    for await (const w of client.workflow.list({ query })) open.push({ workflowId: w.workflowId, runId: w.runId });
    await Promise.all(
      open.map(({ workflowId, runId }) =>
        client.workflow
          .getHandle(workflowId, runId)
          .terminate('test file ended (test/setup/after-file.ts)')
          .catch((err: unknown) => {
            if (!(err instanceof WorkflowNotFoundError)) throw err;
          }),
      ),
    );
    if (open.length > 0) {
      const ids = open.map((w) => w.workflowId);
      process.stderr.write(
        `after-file: terminated ${open.length} workflows left running: ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''}\n`,
      );
    }
  } finally {
    await connection.close();
  }
}, 60_000);
