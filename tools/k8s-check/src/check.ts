import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkInvariants, referencedSecrets, type OverlayPolicy } from './invariants.ts';
import { renderOverlays } from './render.ts';
import { ensureToolchain, kubectlBinary, kubectlVersion, repoRoot } from './toolchain.ts';
import { checkNatsConfig, checkPromql, checkUnknownFields, validateSchemas, vendoredSchemas, type Problem } from './validate.ts';

/**
 * `npm run k8s:check`: renders every overlay of deploy/k8s with kustomize and validates every
 * object offline (see validate.ts and invariants.ts; what is and is not covered: deploy/k8s/README.md,
 * "Offline checks"). Needs only the npm registry (the toolchain is installed on first use) and
 * nats-server. Exit code 1 on any problem.
 */

/** What each overlay must satisfy beyond the schemas. */
const POLICIES: Record<string, OverlayPolicy> = {
  dev: { requireMonitoring: false, minReplicasWithPdb: 1, requirePinnedImages: false },
  prod: { requireMonitoring: true, minReplicasWithPdb: 2, requirePinnedImages: true },
};

const log = (line: string): void => {
  process.stdout.write(`k8s-check: ${line}\n`);
};

async function main(): Promise<number> {
  const started = Date.now();
  ensureToolchain(log);
  const kubectl = kubectlBinary();
  log(`kubectl: ${kubectlVersion(kubectl)}`);
  log(`vendored CRD subset schemas: ${vendoredSchemas().join(', ')}`);
  const overlays = renderOverlays(kubectl, log);
  const readme = readFileSync(join(repoRoot, 'deploy/k8s/README.md'), 'utf8');
  const failures: { overlay: string; problem: Problem }[] = [];
  let checks = 0;
  for (const { overlay, objects } of overlays) {
    const policy = POLICIES[overlay];
    if (policy === undefined) throw new Error(`no policy for overlays/${overlay}: add it to POLICIES in tools/k8s-check/src/check.ts`);
    const schemas = await validateSchemas(objects);
    const strict = checkUnknownFields(objects);
    const promql = await checkPromql(objects);
    const nats = checkNatsConfig(objects);
    const invariants = checkInvariants(objects, policy);
    const secrets = referencedSecrets(objects)
      .filter((name) => !readme.includes(`\`${name}\``))
      .map((name): Problem => ({ object: `Secret/${name}`, message: 'referenced but not documented under "Secrets to create" in deploy/k8s/README.md' }));
    const problems = [...schemas.problems, ...strict.problems, ...promql.problems, ...nats, ...invariants, ...secrets];
    const sources = Object.entries(schemas.bySource)
      .map(([source, n]) => `${n} by ${source}`)
      .join(', ');
    log(
      `overlays/${overlay}: ${objects.length} objects (schemas: ${sources}; unknown fields: ${strict.checked} objects; PromQL: ${promql.checked} expressions; ` +
        `nats.conf: ${objects.some((o) => o.kind === 'StatefulSet' && o.metadata.name === 'nats') ? 'nats-server -t' : 'n/a'}; invariants; secrets documented) -> ${problems.length === 0 ? 'ok' : `${problems.length} problem(s)`}`,
    );
    for (const problem of problems) failures.push({ overlay, problem });
    checks += 6;
  }
  for (const { overlay, problem } of failures) process.stdout.write(`  overlays/${overlay} ${problem.object}: ${problem.message}\n`);
  log(`${failures.length === 0 ? 'all overlays valid' : `${failures.length} problem(s)`} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return failures.length === 0 && checks > 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`k8s-check: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
