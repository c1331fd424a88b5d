// The Temporal Web UI shows a pipeline the way README promises: filtered by ConveyorBranch, the
// run, its status and its stage children. The test stack's dev server is headless, so this test
// starts its own dev server with the UI, runs a pipeline on it and reads the UI with Debian's
// chromium, driven by playwright-core.
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { decidePush } from '../../api/github-push';
import { startPipeline } from '../../api/start-pipeline';
import { commitSample } from '../../cli/demo/sample-repo';
import { startTemporalServer } from '../../cli/local-stack/servers';
import type { Service } from '../../cli/local-stack/services';
import { ROOT } from '../../cli/local-stack/tools';
import { pushPayload } from '../../cli/webhook-client';
import type { ConveyorConfig } from '../../config/conveyor';
import { statusQuery } from '../../workflows/messages';
import { awsFor, clientFor, ownServerOptions, startWorkers, tempDir, testConfig, uid } from '../helpers/stack';

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = path.join(ROOT, 'test-output');

describe('Temporal Web UI', () => {
  const branch = `ui-${uid()}`;
  const repo = 'acme/widget';
  let server: Service | undefined;
  let uiUrl: string;
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> } | undefined;
  let context: BrowserContext | undefined;
  let workflowId: string;

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(
        `${CHROMIUM} is missing: this test drives Debian's chromium. Install the Debian package chromium ` +
          '(apt-get install -y chromium; scripts/bootstrap.js installs it when run as root)',
      );
    }
    const dir = tempDir('web-ui');
    const options = await ownServerOptions(dir, { headless: false });
    server = await startTemporalServer(options);
    uiUrl = `http://127.0.0.1:${options.uiPort}`;
    const bare = path.join(dir, 'widget.git');
    const base = testConfig([
      {
        name: repo,
        cloneUrl: bare,
        branches: [{ match: branch, channel: 'unstable' }],
        steps: { unit: 'make test', integration: 'make integration', package: 'make package', docs: 'make docs' },
        more: { packages: ['widget'] },
      },
    ]);
    config = { ...base, temporal: { ...base.temporal, address: `127.0.0.1:${options.port}`, uiUrl } };
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
    const commit = await commitSample(bare, path.join(dir, 'work'), { branch, message: 'seen in the Web UI' });
    const decision = decidePush(config, pushPayload({ repository: repo, branch, sha: commit.sha, message: 'ui' }));
    if (decision.action !== 'start') throw new Error(decision.reason);
    workflowId = (await startPipeline(client, decision.input, config.temporal.taskQueue)).workflowId;
    await client.workflow.getHandle(workflowId).result();

    context = await chromium.launchPersistentContext(path.join(dir, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1200 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  afterAll(async () => {
    await context?.close();
    await workers?.stop();
    await client?.connection.close();
    await server?.stop();
  });

  async function shot(page: Page, name: string): Promise<void> {
    fs.mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT, `web-ui-${name}.png`), fullPage: true });
  }

  it('lists the run filtered by ConveyorBranch, shows it completed with its stage children', async () => {
    const page = await context!.newPage();
    page.setDefaultTimeout(20000);
    const query = `ConveyorBranch = "${branch}"`;
    await page.goto(`${uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(query)}`);
    const rows = page.getByTestId('workflows-summary-configurable-table-row');
    await rows.filter({ hasText: workflowId }).waitFor();
    await shot(page, 'list');
    // Only the pipeline carries ConveyorBranch: its stage children are not listed beside it.
    expect(await rows.count()).toBe(1);
    // The status badge reads `Completed` or, in newer UIs, `COMPLETED`.
    expect(squash(await rows.first().innerText())).toMatch(new RegExp(`Completed ${escapeRe(workflowId)}`, 'i'));

    await rows.first().getByRole('link', { name: workflowId }).click();
    await page.waitForURL(
      new RegExp(`/workflows/${escapeRe(encodeURIComponent(workflowId))}/[0-9a-f-]+/(history|timeline)$`),
    );
    await page.getByTestId('workflow-id-heading').filter({ hasText: workflowId }).waitFor();
    await page
      .getByText(/^completed$/i)
      .first()
      .waitFor();
    await shot(page, 'run');

    // Every stage child the run reports, with its status, in the Relationships tab.
    const status = await client.workflow.getHandle(workflowId).query(statusQuery);
    expect(status.stages.map((st) => st.name)).toEqual(expect.arrayContaining(['test', 'package', 'publish']));
    await page.getByTestId('relationships-tab').click();
    for (const st of status.stages) await page.getByRole('link', { name: st.workflowId, exact: true }).waitFor();
    await page.getByRole('link', { name: status.stages[0].workflowId, exact: true }).scrollIntoViewIfNeeded();
    await shot(page, 'relationships');
    const text = squash(await page.locator('body').innerText());
    expect(text).toMatch(
      new RegExp(`Completed Type pipeline ID ${escapeRe(workflowId)} Child Count ${status.stages.length}`, 'i'),
    );
    const notShown = status.stages
      .map((st) => st.workflowId)
      .filter((wf) => !new RegExp(`Completed \\w+ ${escapeRe(wf)} `, 'i').test(text));
    expect(notShown).toEqual([]);
  });
});

function squash(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
