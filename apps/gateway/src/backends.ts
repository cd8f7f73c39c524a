import { Channel, type ChannelCredentials, type ClientOptions } from '@grpc/grpc-js';
import { analyticsV1, customFieldRecord, tagRecord, segmentRecord, tagRuleRecord } from '@crm/contracts';
import { channelOptions, insecure, signCallsOn, type InternalTokenSigner, type Logger } from '@crm/platform';
import type { GatewayConfig } from './config.ts';
import { grpcHealthClient } from './grpc-health.ts';
import type { IdempotencyStore } from './http/idempotency.ts';
import type { Route } from './http/route.ts';
import { analyticsRoutes } from './resources/analytics.ts';
import { customerRoutes } from './resources/customer.routes.ts';
import { duplicateAwareRecordRoutes, duplicateRoutes } from './resources/duplicate.routes.ts';
import { mergeRoutes } from './resources/merge.routes.ts';
import { documentRoutes } from './resources/document.routes.ts';
import { recordRoutes } from './resources/record.resource.ts';
import { segmentRoutes } from './resources/segment.routes.ts';

/** A ts-proto grpc-js client class, e.g. `contactsV1.CompanyServiceClient`. */
export type GrpcClientClass<T> = new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>) => T;

/** What a backend's routes are built from. */
export interface BackendContext {
  /** A client of `Client` over the backend's one channel (closed with it; never close it yourself). */
  client<T>(Client: GrpcClientClass<T>): T;
  /** Deadline of each gRPC call, ms (`GRPC_DEADLINE_MS`). */
  deadlineMs: number;
  /** The Idempotency-Key store, for POST routes that create. */
  idempotency: IdempotencyStore;
  /** The gateway's logger, for errors a route answers without rethrowing (batch items). */
  logger?: Logger;
}

/**
 * A gRPC service behind the gateway. Wiring one in is one entry of {@link BACKENDS}: its name
 * (readiness check, logs), its address from the config, and the routes it serves; the gateway
 * derives the channel, the grpc.health.v1 readiness check, mounting, OpenAPI and close() from it.
 */
export interface Backend {
  /** Key in `/readyz` checks, e.g. `contacts`. */
  name: string;
  /** gRPC target (`host:port`), from a `<NAME>_GRPC_URL` config variable. */
  url(config: GatewayConfig): string;
  /** The REST routes served over this backend. */
  routes(backend: BackendContext): Route[];
}

/** Every backend of the gateway. */
export const BACKENDS: readonly Backend[] = [
  {
    name: 'contacts',
    url: (config) => config.CONTACTS_GRPC_URL,
    // record resources: one line per aggregate, everything derived from its declaration
    routes: (backend) => [
      // companies and contacts: create checks for likely duplicates, get tells where a merged one went
      ...duplicateAwareRecordRoutes('company', backend),
      ...duplicateAwareRecordRoutes('contact', backend),
      ...recordRoutes(tagRecord, backend),
      ...recordRoutes(tagRuleRecord, backend),
      ...recordRoutes(customFieldRecord, backend),
      ...recordRoutes(segmentRecord, backend),
      ...segmentRoutes(backend),
      ...customerRoutes(backend),
      ...duplicateRoutes(backend),
      ...mergeRoutes(backend),
      ...documentRoutes(backend),
    ],
  },
  {
    name: 'analytics',
    url: (config) => config.ANALYTICS_GRPC_URL,
    routes: ({ client, deadlineMs }) => analyticsRoutes(client(analyticsV1.AnalyticsServiceClient), deadlineMs),
  },
];

/** A backend with its channel open: its routes, its readiness and how to close it. */
export interface ConnectedBackend {
  name: string;
  routes: Route[];
  /** True when the backend answers grpc.health.v1 SERVING. */
  ready(): Promise<boolean>;
  close(): void;
}

/**
 * Opens one channel per backend (connecting lazily, on the first call), whose calls carry internal
 * tokens from `shared.signer`, and builds its routes. Throws (at boot) when two backends share a name.
 */
export function connectBackends(
  backends: readonly Backend[],
  config: GatewayConfig,
  shared: { deadlineMs: number; idempotency: IdempotencyStore; signer: InternalTokenSigner; logger?: Logger },
): ConnectedBackend[] {
  const { signer, ...context } = shared;
  const names = backends.map((b) => b.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new Error(`two backends named ${twice}`);
  return backends.map((backend) => {
    const url = backend.url(config);
    const channel = new Channel(url, insecure(), channelOptions());
    signCallsOn(channel, signer);
    const health = grpcHealthClient(url);
    const routes = backend.routes({ ...context, client: (Client) => new Client(url, insecure(), { channelOverride: channel }) });
    return {
      name: backend.name,
      routes,
      ready: () => health.serving(),
      close: () => {
        channel.close();
        health.close();
      },
    };
  });
}
