import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { configSchema as analyticsConfig, createAnalyticsService } from '@crm/analytics-svc';
import { configSchema as contactsConfig, createContactsService } from '@crm/contacts-svc';
import { createDatabase, dropDatabase, ensurePostgres, startNatsServer, waitFor, type NatsServerProcess } from '@crm/dev/infra';
import { startDevIssuer, type DevIssuer } from '@crm/dev-issuer';
import { configSchema as gatewayConfig, createGateway, type GatewayHandle } from '@crm/gateway';
import { runWithContext, type ServiceHandle } from '@crm/platform';

export { waitFor };

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

/** The real suite, booted in-process. */
export interface TestSuite {
  infra: TestInfra;
  issuer: DevIssuer;
  contacts: ServiceHandle;
  analytics: ServiceHandle;
  gateway: GatewayHandle;
  /** An access token from the issuer's token endpoint (password grant, client crm-cli). */
  token(username: string): Promise<string>;
  /** fetch against the gateway with `username`'s token (or none when `username` is null). */
  api(path: string, init?: RequestInit & { as?: string | null; json?: unknown }): Promise<Response>;
  close(): Promise<void>;
}

/** Boots issuer, contacts-svc, analytics-svc and the gateway against a fresh {@link TestInfra}. */
export async function startTestSuite(): Promise<TestSuite> {
  const infra = await startTestInfra();
  const issuer = await startDevIssuer({ realmFile: REALM_FILE, port: 0 });
  const env = serviceEnv(infra);
  const contacts = await createContactsService(contactsConfig.parse(env));
  const analytics = await createAnalyticsService(analyticsConfig.parse(env));
  const gateway = await createGateway(
    gatewayConfig.parse({
      PORT: '0',
      DATABASE_URL: infra.databaseUrl,
      KEYCLOAK_URL: issuer.baseUrl,
      CONTACTS_GRPC_URL: `127.0.0.1:${contacts.grpcPort}`,
      ANALYTICS_GRPC_URL: `127.0.0.1:${analytics.grpcPort}`,
      LOG_LEVEL: env['LOG_LEVEL'],
    }),
  );
  const tokens = new Map<string, string>();
  const token = async (username: string): Promise<string> => {
    const cached = tokens.get(username);
    if (cached) return cached;
    const res = await fetch(`${issuer.issuerUrl}/protocol/openid-connect/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'password', client_id: 'crm-cli', username, password: DEMO_PASSWORD }),
    });
    if (!res.ok) throw new Error(`token for ${username}: ${res.status} ${await res.text()}`);
    const { access_token } = (await res.json()) as { access_token: string };
    tokens.set(username, access_token);
    return access_token;
  };
  return {
    infra,
    issuer,
    contacts,
    analytics,
    gateway,
    token,
    api: async (path, init = {}) => {
      const { as = 'admin@acme.test', json, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (as) headers.set('authorization', `Bearer ${await token(as)}`);
      if (json !== undefined) headers.set('content-type', 'application/json');
      return fetch(`${gateway.url}${path}`, { ...rest, headers, ...(json !== undefined ? { body: JSON.stringify(json) } : {}) });
    },
    close: async () => {
      await gateway.close();
      await analytics.close();
      await contacts.close();
      await issuer.close();
      await infra.close();
    },
  };
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
  return runWithContext({ organizationId: organizationId(alias), userId: `admin-of-${alias}`, roles: ['crm-admin'], requestId: randomBytes(8).toString('hex') }, fn);
}
