import { z } from 'zod';

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

/** Env parts every service shares. Ports: gRPC 50051.., ops HTTP (health/metrics) 9400.. */
export const serviceEnv = {
  DATABASE_URL: z.url().default('postgres://postgres@127.0.0.1:5432/crm'),
  NATS_URL: z.string().min(1).default('nats://127.0.0.1:4222'),
  GRPC_HOST: z.string().default('127.0.0.1'),
  OPS_HOST: z.string().default('127.0.0.1'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** JetStream replicas of the event stream: 1 locally, 3 in a cluster. */
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
};

/** A TCP port number from an env string; 0 = pick a free port (tests). */
export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
