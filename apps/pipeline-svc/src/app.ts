import { loadConfig, OutboxMessage, platformMessagingMigration, port, serviceEnv, startService, type ServiceHandle } from '@crm/platform';
import { z } from 'zod';

/** Environment of pipeline-svc. */
export const configSchema = z.object({ ...serviceEnv, GRPC_PORT: port(7052), OPS_PORT: port(9402) });

/**
 * Composition root of pipeline-svc (schema `pipeline`). Until its domain lands it serves only
 * grpc.health.v1, /healthz, /readyz and /metrics, with its outbox ready.
 */
export function createPipelineService(config: z.infer<typeof configSchema> = loadConfig(configSchema)): Promise<ServiceHandle> {
  return startService(
    { name: 'pipeline-svc', schema: 'pipeline', entities: [OutboxMessage], migrations: [platformMessagingMigration], grpc: () => [] },
    config,
  );
}
