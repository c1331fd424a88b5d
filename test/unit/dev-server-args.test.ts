// The dev server's command line: the SQLite pragmas and the dynamic config the local stack, the
// tests and the benchmarks run it with (cli/local-stack/servers.ts says why each is there; the
// overhead benchmark measures the transfer queue's read rate: docs/benchmarks.md §1).
import { DEV_DYNAMIC_CONFIG, devServerArgs, type TemporalServerOptions } from '../../cli/local-stack/servers';
import { benchDynamicConfig } from '../../bench/servers';

const options: Omit<TemporalServerOptions, 'logFile'> = {
  port: 7233,
  uiPort: 8233,
  httpPort: 7243,
  metricsPort: 7244,
  namespace: 'default',
  dbFile: '/var/lib/conveyor/temporal.db',
  searchAttributes: { ConveyorRepository: 'Keyword' },
  headless: true,
};

/** The values given to `flag`, in order. */
const valuesOf = (args: string[], flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]] : []));

describe('dev server arguments', () => {
  it('read the transfer queue up to 1,000 times a second, in WAL mode', () => {
    const args = devServerArgs(options);
    expect(valuesOf(args, '--dynamic-config-value')).toEqual(['history.transferProcessorMaxPollRPS=1000']);
    expect(valuesOf(args, '--sqlite-pragma')).toEqual(['journal_mode=wal', 'synchronous=normal']);
    expect(valuesOf(args, '--search-attribute')).toEqual(['ConveyorRepository=Keyword']);
    expect(valuesOf(args, '--db-filename')).toEqual([options.dbFile]);
  });

  it("leave the server's own defaults when asked to", () => {
    const args = devServerArgs({ ...options, dynamicConfig: [], sqlitePragmas: [] });
    expect(args).not.toContain('--dynamic-config-value');
    expect(args).not.toContain('--sqlite-pragma');
  });

  it('take a benchmark comparison from BENCH_DYNAMIC_CONFIG, and refuse what is not key=value', () => {
    expect(benchDynamicConfig({})).toBeUndefined();
    expect(benchDynamicConfig({ BENCH_DYNAMIC_CONFIG: 'server' })).toEqual([]);
    expect(
      benchDynamicConfig({
        BENCH_DYNAMIC_CONFIG: ' history.transferProcessorMaxPollRPS=200  history.timerProcessorMaxPollRPS=200 ',
      }),
    ).toEqual(['history.transferProcessorMaxPollRPS=200', 'history.timerProcessorMaxPollRPS=200']);
    expect(() => benchDynamicConfig({ BENCH_DYNAMIC_CONFIG: 'fast --ip=0.0.0.0' })).toThrow(
      'BENCH_DYNAMIC_CONFIG: not key=value: fast --ip=0.0.0.0',
    );
    expect(DEV_DYNAMIC_CONFIG).toEqual(['history.transferProcessorMaxPollRPS=1000']);
  });
});
