import { z } from 'zod';
import { port } from '@crm/platform';

/** Environment of the gateway. */
export const configSchema = z.object({
  HOST: z.string().default('127.0.0.1'),
  PORT: port(3000),
  /** Keycloak base URL (keycloak-connect's auth-server-url); tokens' `iss` must be `<it>/realms/<realm>`. */
  KEYCLOAK_URL: z.url().default('http://127.0.0.1:8080'),
  KEYCLOAK_REALM: z.string().default('crm'),
  /** The API's audience: tokens must list it in `aud`. */
  KEYCLOAK_CLIENT_ID: z.string().default('crm-gateway'),
  /** Idempotency-key store (schema `gateway`). */
  DATABASE_URL: z.url().default('postgres://postgres@127.0.0.1:5432/crm'),
  CONTACTS_GRPC_URL: z.string().default('127.0.0.1:50051'),
  ANALYTICS_GRPC_URL: z.string().default('127.0.0.1:50055'),
  /** Requests per minute per user (or per IP before authentication). */
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(600),
  /** Deadline of each gRPC call, ms. */
  GRPC_DEADLINE_MS: z.coerce.number().int().positive().default(5000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type GatewayConfig = z.infer<typeof configSchema>;
