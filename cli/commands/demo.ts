// `conveyor demo`: the whole chain for the sample project on the local stack (cli/demo/).
import path from 'node:path';
import { Command } from 'commander';
import { ROOT } from '../local-stack/tools';
import { configPath } from './context';

export function demoCommand(): Command {
  return new Command('demo')
    .summary('run the whole chain for the sample project')
    .description('run the whole chain on the local stack for the sample project, starting the stack if needed')
    .option('--dev-config <file>', 'the local stack description', path.join(ROOT, 'temporal-dev.yml'))
    .option('--fail', "make the sample's unit test fail, to see a failed stage")
    .action(async (o: { devConfig: string; fail?: boolean }, cmd: Command) => {
      const [{ loadDevConfig }, { runDemo }] = await Promise.all([
        import('../../config/temporal-dev'),
        import('../demo/demo'),
      ]);
      const dev = loadDevConfig(o.devConfig);
      process.exitCode = await runDemo({ dev, configFile: configPath(cmd), failUnit: o.fail });
    });
}
