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
  /** The first contacts-svc replica (the only one unless {@link TestSuiteOptions.contactsReplicas} says otherwise). */
  contacts: ServiceHandle;
  /** Every contacts-svc replica, on one database and one NATS; the gateway balances its calls over all of them. */
  contactsReplicas: readonly ServiceHandle[];
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
  /**
   * Puts something (e.g. a fault-injecting proxy) between the gateway and contacts-svc: gets a
   * replica's gRPC port, returns the `127.0.0.1:<port>` the gateway dials instead. Called once per replica.
   */
  contactsAddress?: (grpcPort: number) => Promise<string>;
  /**
   * contacts-svc replicas, booted at the same time on the same database and NATS (concurrent
   * migrations, stream creation, relays) with the gateway balancing over them round robin
   * (target `ipv4:127.0.0.1:<p1>,127.0.0.1:<p2>`). Default: `CRM_TEST_CONTACTS_REPLICAS`, else 1 —
   * so `CRM_TEST_CONTACTS_REPLICAS=2 npm test -- apps/gateway/test` runs the gateway's specs against two.
   */
  contactsReplicas?: number;
  /** Gateway environment over the suite's (e.g. `{ RATE_LIMIT_PER_MINUTE: '5' }`). */
  gateway?: Record<string, string>;
  /** Dev issuer options over the suite's (e.g. `publicBaseUrl`). */
  issuer?: Partial<DevIssuerOptions>;
}

/** contacts-svc replicas of a suite: the option, else `CRM_TEST_CONTACTS_REPLICAS`, else 1. */
export function contactsReplicaCount(options: TestSuiteOptions = {}): number {
  const count = options.contactsReplicas ?? Number(process.env['CRM_TEST_CONTACTS_REPLICAS'] ?? 1);
  if (!Number.isInteger(count) || count < 1) throw new Error(`contacts-svc replicas must be a whole number ≥ 1, not ${String(count)}`);
  return count;
}

/**
 * The gRPC target of `addresses` (`127.0.0.1:<port>` each): the address itself for one, else an
 * `ipv4:` list that grpc-js resolves to every address (the channel balances round robin over them).
 */
export function grpcTarget(addresses: readonly string[]): string {
  return addresses.length === 1 ? addresses[0]! : `ipv4:${addresses.join(',')}`;
}

/**
 * Boots issuer, contacts-svc (one replica, or {@link TestSuiteOptions.contactsReplicas}),
 * analytics-svc and the gateway against a fresh {@link TestInfra}. The gateway listens on free
 * public and ops ports and, unless `options.gateway` says otherwise, also serves `/metrics` and
 * the detailed `/readyz` on its public port (`PUBLIC_OPS_ENDPOINTS`).
 */
export async function startTestSuite(options: TestSuiteOptions = {}): Promise<TestSuite> {
  const infra = await startTestInfra();
  const issuer = await startDevIssuer({ realmFile: REALM_FILE, port: 0, ...options.issuer });
  const env = serviceEnv(infra);
  // all at once, as pods of one Deployment start: their boots race on migrations and the stream
  const booted = await Promise.allSettled(Array.from({ length: contactsReplicaCount(options) }, () => createContactsService(contactsConfig.parse(env))));
  const contactsReplicas = booted.flatMap((b) => (b.status === 'fulfilled' ? [b.value] : []));
  const failed = booted.find((b): b is PromiseRejectedResult => b.status === 'rejected');
  if (failed) {
    await Promise.all(contactsReplicas.map((r) => r.close()));
    await issuer.close();
    await infra.close();
    throw failed.reason;
  }
  const contacts = contactsReplicas[0]!;
  const analytics = await createAnalyticsService(analyticsConfig.parse(env));
  const contactsAddress = grpcTarget(
    await Promise.all(contactsReplicas.map(async (r) => (await options.contactsAddress?.(r.grpcPort)) ?? `127.0.0.1:${r.grpcPort}`)),
  );
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
      // the gateway shares this process's event loop with the services and the test's own client, so
      // its lag guard would measure their work: off unless a spec turns it on (load shedding spec)
      SHED_MAX_EVENT_LOOP_DELAY_MS: '0',
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
    contactsReplicas,
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
      await Promise.all(contactsReplicas.map((r) => r.close()));
      await issuer.close();
      await infra.close();
    },
  };
}
