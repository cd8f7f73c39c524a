import { loadConfig, OutboxMessage, platformMessagingMigration, port, serviceEnv, startService, type ServiceHandle } from '@crm/platform';
import { z } from 'zod';

/** Environment of activities-svc. */
export const configSchema = z.object({ ...serviceEnv, GRPC_PORT: port(7054), OPS_PORT: port(9404) });

/**
 * Composition root of activities-svc (schema `activities`). Until its domain lands it serves only
 * grpc.health.v1, /healthz, /readyz and /metrics, with its outbox ready.
 */
export function createActivitiesService(config: z.infer<typeof configSchema> = loadConfig(configSchema)): Promise<ServiceHandle> {
  return startService(
    { name: 'activities-svc', schema: 'activities', entities: [OutboxMessage], migrations: [platformMessagingMigration], grpc: () => [] },
    config,
  );
}
