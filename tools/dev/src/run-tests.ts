import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

/**
 * `npm test`: Jest 30 on this Node 24 with ES modules (MikroORM 7 and jose 6 are ESM-only, hence
 * --experimental-vm-modules), two workers (the machines have 2 cores), and the real Postgres and
 * NATS the integration specs start or find (see tools/dev/src/infra.ts). Extra arguments go to
 * Jest, e.g. `npm test -- --selectProjects unit`.
 */
const root = resolve(import.meta.dirname, '../../..');
const jest = resolve(root, 'node_modules/jest/bin/jest.js');
const nodeOptions = [process.env['NODE_OPTIONS'], '--experimental-vm-modules', '--disable-warning=ExperimentalWarning'].filter(Boolean).join(' ');
const result = spawnSync(process.execPath, [jest, '--maxWorkers=2', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, NODE_OPTIONS: nodeOptions },
});
process.exit(result.status ?? 1);
