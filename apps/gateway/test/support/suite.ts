import { configSchema as analyticsConfig, createAnalyticsService } from '@crm/analytics-svc';
import { configSchema as contactsConfig, createContactsService } from '@crm/contacts-svc';
import { fetchToken } from '@crm/dev/seed';
import { startDevIssuer, type DevIssuer, type DevIssuerOptions } from '@crm/dev-issuer';
import type { ServiceHandle } from '@crm/platform';
import { DEMO_PASSWORD, gatewayTokenEnv, REALM_FILE, serviceEnv, startTestInfra, type TestInfra } from '@crm/testing';
import { configSchema as gatewayConfig, createGateway, type GatewayHandle } from '../../src/app.ts';

/** The real suite, booted in-process. */
export interface TestSuite {
  infra: TestInfra;
  issuer: DevIssuer;
  contacts: ServiceHandle;
  analytics: ServiceHandle;
  gateway: GatewayHandle;
  /**
   * Boots one more gateway on the same database, issuer and backends (a second replica), with
   * `env` over the suite's gateway settings; closed with the suite unless closed before.
   */
  startGateway(env?: Record<string, string>): Promise<GatewayHandle>;
  /** An access token from the issuer's token endpoint (password grant, client crm-cli). */
  token(username: string): Promise<string>;
  /** fetch against the gateway with `username`'s token (or none when `username` is null). */
  api(path: string, init?: RequestInit & { as?: string | null; json?: unknown }): Promise<Response>;
  close(): Promise<void>;
}

/** Options of {@link startTestSuite}. */
export interface TestSuiteOptions {
  /** Puts something (e.g. a fault-injecting proxy) between the gateway and contacts-svc: gets its gRPC port, returns the address the gateway dials. */
  contactsAddress?: (grpcPort: number) => Promise<string>;
  /** Gateway environment over the suite's (e.g. `{ RATE_LIMIT_PER_MINUTE: '5' }`). */
  gateway?: Record<string, string>;
  /** Dev issuer options over the suite's (e.g. `publicBaseUrl`). */
  issuer?: Partial<DevIssuerOptions>;
}

/**
 * Boots issuer, contacts-svc, analytics-svc and the gateway against a fresh {@link TestInfra}. The
 * gateway listens on free public and ops ports and, unless `options.gateway` says otherwise, also
 * serves `/metrics` and the detailed `/readyz` on its public port (`PUBLIC_OPS_ENDPOINTS`).
 */
export async function startTestSuite(options: TestSuiteOptions = {}): Promise<TestSuite> {
  const infra = await startTestInfra();
  const issuer = await startDevIssuer({ realmFile: REALM_FILE, port: 0, ...options.issuer });
  const env = serviceEnv(infra);
  const contacts = await createContactsService(contactsConfig.parse(env));
  const analytics = await createAnalyticsService(analyticsConfig.parse(env));
  const contactsAddress = (await options.contactsAddress?.(contacts.grpcPort)) ?? `127.0.0.1:${contacts.grpcPort}`;
  const gatewayEnv = (overrides: Record<string, string> = {}) =>
    gatewayConfig.parse({
      PORT: '0',
      OPS_PORT: '0',
      PUBLIC_OPS_ENDPOINTS: 'true',
      DATABASE_URL: infra.databaseUrl,
      // keys where the issuer listens, iss under its public URL (the same unless options.issuer.publicBaseUrl)
      KEYCLOAK_URL: issuer.localUrl,
      KEYCLOAK_PUBLIC_URL: issuer.baseUrl,
      CONTACTS_GRPC_URL: contactsAddress,
      ANALYTICS_GRPC_URL: `127.0.0.1:${analytics.grpcPort}`,
      LOG_LEVEL: env['LOG_LEVEL'],
      ...gatewayTokenEnv(),
      ...options.gateway,
      ...overrides,
    });
  const gateway = await createGateway(gatewayEnv());
  const replicas: GatewayHandle[] = [];
  const tokens = new Map<string, string>();
  const token = async (username: string): Promise<string> => {
    const cached = tokens.get(username);
    if (cached) return cached;
    // the token endpoint where the issuer listens; the token's iss stays the public one
    const access_token = await fetchToken(`${issuer.localUrl}${new URL(issuer.issuerUrl).pathname}`, username, DEMO_PASSWORD);
    tokens.set(username, access_token);
    return access_token;
  };
  return {
    infra,
    issuer,
    contacts,
    analytics,
    gateway,
    startGateway: async (overrides) => {
      const replica = await createGateway(gatewayEnv(overrides));
      replicas.push(replica);
      return replica;
    },
    token,
    api: async (path, init = {}) => {
      const { as = 'admin@acme.test', json, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (as) headers.set('authorization', `Bearer ${await token(as)}`);
      if (json !== undefined) headers.set('content-type', 'application/json');
      return fetch(`${gateway.url}${path}`, { ...rest, headers, ...(json !== undefined ? { body: JSON.stringify(json) } : {}) });
    },
    close: async () => {
      for (const replica of replicas) await replica.close();
      await gateway.close();
      await analytics.close();
      await contacts.close();
      await issuer.close();
      await infra.close();
    },
  };
}
