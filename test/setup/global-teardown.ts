// Stops the test stack started by global-setup.ts, also after failed tests.
import fs from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  const services = globalThis.__conveyorTestServices ?? [];
  await Promise.all(services.map((s) => s.stop(5000)));
  const dir = process.env.CONVEYOR_TEST_DIR;
  if (dir && !process.env.CONVEYOR_KEEP_TEST_DIR) fs.rmSync(dir, { recursive: true, force: true });
  const prebuilt = process.env.CONVEYOR_TEST_PREBUILT;
  if (prebuilt) fs.rmSync(prebuilt, { recursive: true, force: true });
}
