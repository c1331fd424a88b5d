import type { Benchmark } from './harness';
export const intake: Benchmark = { name: 'intake', describe: 'todo', run: () => Promise.reject(new Error('not yet')) };
