import { z } from 'zod';
import { internalTokenPrivateKey, port } from '@crm/platform';

/** Environment of the gateway. */
export const configSchema = z.object({
  HOST: z.string().default('127.0.0.1'),
  PORT: port(3000),
  /** Keycloak base URL the gateway reaches it at (in Kubernetes the in-cluster Service): the realm's keys come from here. */
  KEYCLOAK_URL: z.url().default('http://127.0.0.1:8080'),
  /**
   * Keycloak base URL clients reach it at, under which it issues tokens: `iss` must be
   * `<it>/realms/<realm>` exactly. Also the OpenID Connect URL in the API docs. Default `KEYCLOAK_URL`.
   */
  KEYCLOAK_PUBLIC_URL: z.url().optional(),
  KEYCLOAK_REALM: z.string().default('crm'),
  /** The API's audience: tokens must list it in `aud`. */
  KEYCLOAK_CLIENT_ID: z.string().default('crm-gateway'),
  /** Idempotency keys and rate-limit counters (schema `gateway`); the gateway is ready when this answers. */
  DATABASE_URL: z.url().default('postgres://postgres@127.0.0.1:5432/crm'),
  CONTACTS_GRPC_URL: z.string().default('127.0.0.1:7051'),
  ANALYTICS_GRPC_URL: z.string().default('127.0.0.1:7055'),
  /** Ed25519 key (PEM PKCS#8 or private JWK) the internal tokens of gRPC calls are signed with; required. */
  INTERNAL_TOKEN_PRIVATE_KEY: internalTokenPrivateKey,
  /** Requests per minute per tenant and user (after authentication), counted across all replicas. */
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(600),
  /** Requests per minute per client IP (IPv6: per /56) before authentication, counted across all replicas. */
  RATE_LIMIT_PER_IP_PER_MINUTE: z.coerce.number().int().positive().default(3000),
  /** Deadline of each gRPC call, ms. */
  GRPC_DEADLINE_MS: z.coerce.number().int().positive().default(5000),
  /** Ops HTTP server: `/healthz`, detailed `/readyz` (backends reported, not gating), `/metrics`. */
  OPS_HOST: z.string().default('127.0.0.1'),
  OPS_PORT: port(9400),
  /**
   * Also serve `/metrics` and the detailed `/readyz` on the public port (as before the ops port
   * existed). Off by default: production exposes them only on the ops port.
   */
  PUBLIC_OPS_ENDPOINTS: z.stringbool().default(false),
  /** On shutdown, how long in-flight requests may take to finish before their connections are cut, ms. */
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().nonnegative().default(10_000),
  /**
   * Load shedding (http/shedding.ts): requests of one backend's routes running at once; beyond it
   * they wait in a bounded queue or are answered 503 with `Retry-After`. Counted per gateway replica.
   */
  SHED_MAX_IN_FLIGHT: z.coerce.number().int().positive().default(64),
  /** Requests of one backend's routes waiting for a slot; one more is shed at once (0 = never wait). */
  SHED_MAX_QUEUE: z.coerce.number().int().nonnegative().default(64),
  /** File transfers (uploads, downloads, exports) of one backend running at once, in their own pool without a queue; one more is shed at once. */
  SHED_MAX_TRANSFERS: z.coerce.number().int().positive().default(16),
  /** Longest wait for a slot, ms; a request still waiting then is shed. */
  SHED_MAX_QUEUE_WAIT_MS: z.coerce.number().int().positive().default(25),
  /** Event-loop delay (mean over a 250 ms window, ms) above which every API request is shed; 0 turns it off. */
  SHED_MAX_EVENT_LOOP_DELAY_MS: z.coerce.number().int().nonnegative().default(100),
  /** `Retry-After` of a shed answer, seconds. */
  SHED_RETRY_AFTER_SECONDS: z.coerce.number().int().positive().default(1),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** The access log: one JSON line per request at info level (route template, status, duration, bytes, ids); `false` turns it off. */
  ACCESS_LOG: z.stringbool().default(true),
  /** Also log requests to `/healthz`, `/readyz` and `/metrics` (probes and scrapes), which the access log leaves out by default. */
  ACCESS_LOG_OPS_ENDPOINTS: z.stringbool().default(false),
});

export type GatewayConfig = z.infer<typeof configSchema>;
