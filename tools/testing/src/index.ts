import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  createDatabase,
  dropDatabase,
  ensurePostgres,
  randomNatsPassword,
  serviceNatsUsers,
  startNatsServer,
  waitFor,
  type NatsServerProcess,
} from '@crm/dev/infra';
import {
  createInternalTokenSigner,
  parseInternalTokenPrivateKey,
  runWithContext,
  runWithSigner,
  type InternalTokenSigner,
  type NatsCredentials,
} from '@crm/platform';

export { waitFor };
export * from './schema.ts';
export * from './tcp-proxy.ts';

/** Realm export that drives the dev issuer (and real Keycloak). */
export const REALM_FILE = resolve(import.meta.dirname, '../../../deploy/keycloak/realm-crm.json');

/** Admin connection for creating throwaway databases; override with CRM_TEST_POSTGRES_URL. */
export const POSTGRES_ADMIN_URL = process.env['CRM_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Demo password of every realm user. */
export const DEMO_PASSWORD = 'crm-dev';

/**
 * The test key pair of internal tokens (PEM), made once per test file: services under test accept
 * tokens signed with it ({@link serviceEnv}), the gateway signs with it ({@link gatewayTokenEnv}),
 * and {@link asAdminOf} signs the calls a spec makes itself.
 */
export const TEST_INTERNAL_TOKEN_KEYS = (() => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
})();

/** Signs with the test key ({@link TEST_INTERNAL_TOKEN_KEYS}), as the gateway does with its own. */
export const testSigner: InternalTokenSigner = createInternalTokenSigner(parseInternalTokenPrivateKey(TEST_INTERNAL_TOKEN_KEYS.privateKeyPem));

/** NATS user of the tests themselves (publishing as a relay would, reading the stream): no restrictions. */
export const TEST_NATS_USER = 'crm-test';

/** A throwaway database and a private nats-server, for one test file. */
export interface TestInfra {
  databaseUrl: string;
  /** Accepts the five service users (each with its permissions, one password) and {@link TEST_NATS_USER}. */
  nats: NatsServerProcess;
  /** Credentials of {@link TEST_NATS_USER}: `connectNats(infra.nats.url, name, logger, infra.natsAuth)`. */
  natsAuth: NatsCredentials;
  close(): Promise<void>;
}

/**
 * Creates database `crm_test_<random>` on the local Postgres (started if installed but down; the
 * test fails with install instructions if there is none) and starts a private JetStream
 * nats-server on a free port with its own store and the services' users and permissions, so test
 * files never share state with each other or with the machine's NATS. The service users share one
 * password ({@link serviceEnv} cannot tell which service it configures; each user keeps its own
 * permissions).
 */
export async function startTestInfra(): Promise<TestInfra> {
  await ensurePostgres(POSTGRES_ADMIN_URL);
  const name = `crm_test_${randomBytes(6).toString('hex')}`;
  const databaseUrl = await createDatabase(POSTGRES_ADMIN_URL, name);
  const servicePassword = randomNatsPassword();
  const natsAuth = { user: TEST_NATS_USER, pass: randomNatsPassword() };
  const nats = await startNatsServer({ users: [...serviceNatsUsers(() => servicePassword), natsAuth] });
  return {
    databaseUrl,
    nats,
    natsAuth,
    close: async () => {
      await nats.dispose();
      await dropDatabase(POSTGRES_ADMIN_URL, name);
    },
  };
}

/**
 * Service configuration for tests: ephemeral ports, quiet logs, the NATS password of the service
 * users (each service connects as its own name), internal tokens of the test key accepted.
 */
export function serviceEnv(infra: TestInfra): Record<string, string> {
  return {
    DATABASE_URL: infra.databaseUrl,
    NATS_URL: infra.nats.url,
    NATS_PASSWORD: infra.nats.credentials('contacts-svc').pass,
    INTERNAL_TOKEN_PUBLIC_KEYS: TEST_INTERNAL_TOKEN_KEYS.publicKeyPem,
    GRPC_PORT: '0',
    OPS_PORT: '0',
    LOG_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'error',
  };
}

/** The gateway's internal-token configuration for tests: it signs with the test key. */
export function gatewayTokenEnv(): Record<string, string> {
  return { INTERNAL_TOKEN_PRIVATE_KEY: TEST_INTERNAL_TOKEN_KEYS.privateKeyPem };
}

/** Organization id of `alias` (acme, globex) from the realm export. */
export function organizationId(alias: string): string {
  const realm = JSON.parse(readFileSync(REALM_FILE, 'utf8')) as { organizations?: { alias: string; id: string }[] };
  const org = realm.organizations?.find((o) => o.alias === alias);
  if (!org) throw new Error(`organization ${alias} is not in ${REALM_FILE}`);
  return org.id;
}

/**
 * Runs `fn` as an admin of `alias`, as the gateway would after authentication: its `callUnary`
 * calls carry internal tokens signed with the test key ({@link testSigner}).
 */
export function asAdminOf<T>(alias: string, fn: () => Promise<T>): Promise<T> {
  return runWithSigner(testSigner, () =>
    runWithContext({ organizationId: organizationId(alias), userId: `admin-of-${alias}`, roles: ['crm-admin'], requestId: randomBytes(8).toString('hex') }, fn),
  );
}
export * from './reply-cutter.ts';
