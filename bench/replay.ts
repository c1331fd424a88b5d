import type { Benchmark } from './harness';
export const replay: Benchmark = { name: 'replay', describe: 'todo', run: () => Promise.reject(new Error('not yet')) };
