import { configSchema as analyticsConfig, createAnalyticsService } from '@crm/analytics-svc';
import { configSchema as contactsConfig, createContactsService } from '@crm/contacts-svc';
import { fetchToken } from '@crm/dev/seed';
import { startDevIssuer, type DevIssuer } from '@crm/dev-issuer';
import type { ServiceHandle } from '@crm/platform';
import { DEMO_PASSWORD, REALM_FILE, serviceEnv, startTestInfra, type TestInfra } from '@crm/testing';
import { configSchema as gatewayConfig, createGateway, type GatewayHandle } from '../../src/app.ts';

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

/** Options of {@link startTestSuite}. */
export interface TestSuiteOptions {
  /** Puts something (e.g. a fault-injecting proxy) between the gateway and contacts-svc: gets its gRPC port, returns the address the gateway dials. */
  contactsAddress?: (grpcPort: number) => Promise<string>;
}

/** Boots issuer, contacts-svc, analytics-svc and the gateway against a fresh {@link TestInfra}. */
export async function startTestSuite(options: TestSuiteOptions = {}): Promise<TestSuite> {
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
      CONTACTS_GRPC_URL: (await options.contactsAddress?.(contacts.grpcPort)) ?? `127.0.0.1:${contacts.grpcPort}`,
      ANALYTICS_GRPC_URL: `127.0.0.1:${analytics.grpcPort}`,
      LOG_LEVEL: env['LOG_LEVEL'],
    }),
  );
  const tokens = new Map<string, string>();
  const token = async (username: string): Promise<string> => {
    const cached = tokens.get(username);
    if (cached) return cached;
    const access_token = await fetchToken(issuer.issuerUrl, username, DEMO_PASSWORD);
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
