import type { Benchmark } from './harness';
export const yumIndex: Benchmark = { name: 'yum-index', describe: 'todo', run: () => Promise.reject(new Error('not yet')) };
