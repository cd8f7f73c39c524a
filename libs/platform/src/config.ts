import { z } from 'zod';
import { parseInternalTokenPrivateKey, parseInternalTokenPublicKeys } from './grpc/internal-token.ts';

/**
 * Parses `env` with a zod object schema and returns the typed configuration. All problems are
 * reported at once, naming the variables, e.g. `DATABASE_URL: Invalid URL`; throws on any.
 */
export function loadConfig<S extends z.ZodType>(schema: S, env: Record<string, string | undefined> = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  return result.data;
}

/** A zod string parsed by `parse`; its Error message becomes the variable's config issue. */
function parsedString<T>(parse: (text: string) => T, what: string) {
  return z.string({ error: `required: ${what}` }).transform((text, ctx): T => {
    try {
      return parse(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `${what}: ${err instanceof Error ? err.message : String(err)}` });
      return z.NEVER;
    }
  });
}

/**
 * `INTERNAL_TOKEN_PUBLIC_KEYS` (services, required): the Ed25519 public keys whose internal
 * tokens the service accepts — PEM `PUBLIC KEY` blocks or a JWK Set; several during a rotation.
 */
export const internalTokenPublicKeys = parsedString(parseInternalTokenPublicKeys, 'Ed25519 public key(s), PEM or JWK Set');

/** `INTERNAL_TOKEN_PRIVATE_KEY` (gateway, required): the Ed25519 key internal tokens are signed with — PEM (PKCS#8) or a private JWK. */
export const internalTokenPrivateKey = parsedString(parseInternalTokenPrivateKey, 'Ed25519 private key, PEM (PKCS#8) or JWK');

/**
 * Env parts every service shares. Ports: gRPC 7051.. (below Linux's ephemeral range 32768–60999,
 * so an outgoing connection never holds a service's port at boot), ops HTTP (health/metrics) 9401..
 */
export const serviceEnv = {
  DATABASE_URL: z.url().default('postgres://postgres@127.0.0.1:5432/crm'),
  NATS_URL: z.string().min(1).default('nats://127.0.0.1:4222'),
  /** NATS user; default: the service's name (e.g. `contacts-svc`), whose permissions the NATS config grants. */
  NATS_USER: z.string().min(1).optional(),
  /** NATS password of that user (required: NATS refuses clients without credentials). */
  NATS_PASSWORD: z.string({ error: 'required: the NATS password of this service' }).min(1),
  INTERNAL_TOKEN_PUBLIC_KEYS: internalTokenPublicKeys,
  GRPC_HOST: z.string().default('127.0.0.1'),
  OPS_HOST: z.string().default('127.0.0.1'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** JetStream replicas of the event stream: 1 locally, 3 in a cluster. */
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /** Longest wait of a query for a database connection, in ms (an unreachable server fails it instead of hanging). */
  DB_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  /** Consumers' retry backoff while an event fails for a transient reason: first delay and cap, in ms. */
  CONSUMER_RETRY_INITIAL_MS: z.coerce.number().int().min(1).default(100),
  CONSUMER_RETRY_MAX_MS: z.coerce.number().int().min(1).default(10_000),
  /** Outbox relay: poll interval when no NOTIFY arrives, and the cap of its backoff while NATS or Postgres is away, in ms. */
  OUTBOX_POLL_INTERVAL_MS: z.coerce.number().int().min(10).default(1000),
  OUTBOX_RETRY_MAX_MS: z.coerce.number().int().min(10).default(5000),
};

/** A TCP port number from an env string; 0 = pick a free port (tests). */
export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
