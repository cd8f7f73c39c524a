import { loadConfig, OutboxMessage, port, serviceEnv, startService, type ServiceHandle } from '@crm/platform';
import { z } from 'zod';
import { applyContactsEvent } from './consumers/contacts-events.consumer.ts';
import { migrations } from './migrations/index.ts';
import { CompanyProjection, ContactProjection } from './overview/overview.entity.ts';
import { analyticsGrpc } from './overview/overview.grpc.ts';
import { OverviewService } from './overview/overview.service.ts';

/** Environment of analytics-svc. */
export const configSchema = z.object({ ...serviceEnv, GRPC_PORT: port(50055), OPS_PORT: port(9405) });
export type AnalyticsConfig = z.infer<typeof configSchema>;

/** Durable consumer name (and inbox key) of analytics-svc. */
export const ANALYTICS_CONSUMER = 'analytics-svc';

/** Composition root: boots analytics-svc (schema `analytics`), consuming every `crm.>` event. */
export function createAnalyticsService(config: AnalyticsConfig = loadConfig(configSchema)): Promise<ServiceHandle> {
  return startService(
    {
      name: 'analytics-svc',
      schema: 'analytics',
      entities: [CompanyProjection, ContactProjection, OutboxMessage],
      migrations,
      relay: false,
      grpc: ({ orm }) => [analyticsGrpc(new OverviewService(orm))],
      consumers: () => [{ durable: ANALYTICS_CONSUMER, filterSubject: 'crm.>', handle: applyContactsEvent }],
    },
    config,
  );
}
