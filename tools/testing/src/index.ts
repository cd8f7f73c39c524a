import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createDatabase, dropDatabase, ensurePostgres, startNatsServer, waitFor, type NatsServerProcess } from '@crm/dev/infra';
import { runWithContext } from '@crm/platform';

export { waitFor };
export * from './schema.ts';

/** Realm export that drives the dev issuer (and real Keycloak). */
export const REALM_FILE = resolve(import.meta.dirname, '../../../deploy/keycloak/realm-crm.json');

/** Admin connection for creating throwaway databases; override with CRM_TEST_POSTGRES_URL. */
export const POSTGRES_ADMIN_URL = process.env['CRM_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Demo password of every realm user. */
export const DEMO_PASSWORD = 'crm-dev';

/** A throwaway database and a private nats-server, for one test file. */
export interface TestInfra {
  databaseUrl: string;
  nats: NatsServerProcess;
  close(): Promise<void>;
}

/**
 * Creates database `crm_test_<random>` on the local Postgres (started if installed but down; the
 * test fails with install instructions if there is none) and starts a private JetStream
 * nats-server on a free port with its own store, so test files never share state with each other
 * or with the machine's NATS.
 */
export async function startTestInfra(): Promise<TestInfra> {
  await ensurePostgres(POSTGRES_ADMIN_URL);
  const name = `crm_test_${randomBytes(6).toString('hex')}`;
  const databaseUrl = await createDatabase(POSTGRES_ADMIN_URL, name);
  const nats = await startNatsServer();
  return {
    databaseUrl,
    nats,
    close: async () => {
      await nats.dispose();
      await dropDatabase(POSTGRES_ADMIN_URL, name);
    },
  };
}

/** Service configuration for tests: ephemeral ports, quiet logs. */
export function serviceEnv(infra: TestInfra): Record<string, string> {
  return { DATABASE_URL: infra.databaseUrl, NATS_URL: infra.nats.url, GRPC_PORT: '0', OPS_PORT: '0', LOG_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'error' };
}

/** Organization id of `alias` (acme, globex) from the realm export. */
export function organizationId(alias: string): string {
  const realm = JSON.parse(readFileSync(REALM_FILE, 'utf8')) as { organizations?: { alias: string; id: string }[] };
  const org = realm.organizations?.find((o) => o.alias === alias);
  if (!org) throw new Error(`organization ${alias} is not in ${REALM_FILE}`);
  return org.id;
}

/** Runs `fn` as an admin of `alias`, as the gateway would after authentication (gRPC calls carry it). */
export function asAdminOf<T>(alias: string, fn: () => Promise<T>): Promise<T> {
  return runWithContext(
    { organizationId: organizationId(alias), userId: `admin-of-${alias}`, roles: ['crm-admin'], requestId: randomBytes(8).toString('hex') },
    fn,
  );
}
export * from './reply-cutter.ts';
