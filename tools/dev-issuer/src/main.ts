import { resolve } from 'node:path';
import { startDevIssuer } from './dev-issuer.ts';

/**
 * CLI: starts the dev issuer and prints one JSON line with its URLs.
 * Environment: `REALM_FILE` (default the repository's deploy/keycloak/realm-crm.json),
 * `DEV_ISSUER_HOST` (default 127.0.0.1), `DEV_ISSUER_PORT` (default 8080, 0 = any free port),
 * `DEV_ISSUER_PUBLIC_URL` (base URL that goes into `iss` when clients reach the issuer under
 * another name, e.g. http://keycloak:8080), `DEV_ISSUER_TOKEN_LIFESPAN` (seconds).
 * Stops cleanly on SIGINT / SIGTERM.
 */
const env = process.env;
const realmFile = env['REALM_FILE'] ?? resolve(import.meta.dirname, '../../../deploy/keycloak/realm-crm.json');

const issuer = await startDevIssuer({
  realmFile,
  host: env['DEV_ISSUER_HOST'] ?? '127.0.0.1',
  port: integer('DEV_ISSUER_PORT', env['DEV_ISSUER_PORT'] ?? '8080'),
  ...(env['DEV_ISSUER_PUBLIC_URL'] ? { publicBaseUrl: env['DEV_ISSUER_PUBLIC_URL'] } : {}),
  ...(env['DEV_ISSUER_TOKEN_LIFESPAN'] ? { accessTokenLifespanSeconds: integer('DEV_ISSUER_TOKEN_LIFESPAN', env['DEV_ISSUER_TOKEN_LIFESPAN']) } : {}),
});
process.stdout.write(`${JSON.stringify({ level: 'info', msg: 'dev-issuer listening', url: issuer.baseUrl, issuer: issuer.issuerUrl, realmFile })}\n`);

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  issuer.close().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`dev-issuer: close failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

function integer(name: string, raw: string): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    process.stderr.write(`dev-issuer: ${name} must be a non-negative integer, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return value;
}
