import { loadConfig, OutboxMessage, platformMessagingMigration, port, serviceEnv, startService, type ServiceHandle } from '@crm/platform';
import { z } from 'zod';

/** Environment of quotes-svc. */
export const configSchema = z.object({ ...serviceEnv, GRPC_PORT: port(7053), OPS_PORT: port(9403) });

/**
 * Composition root of quotes-svc (schema `quotes`). Until its domain lands it serves only
 * grpc.health.v1, /healthz, /readyz and /metrics, with its outbox ready.
 */
export function createQuotesService(config: z.infer<typeof configSchema> = loadConfig(configSchema)): Promise<ServiceHandle> {
  return startService({ name: 'quotes-svc', schema: 'quotes', entities: [OutboxMessage], migrations: [platformMessagingMigration], grpc: () => [] }, config);
}
