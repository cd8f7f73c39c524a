import { InboxEntry, loadConfig, OutboxMessage, port, serviceEnv, startService, type ServiceHandle } from '@crm/platform';
import { z } from 'zod';
import { companyCreated } from './consumers/company-created.handler.ts';
import { companyDeleted } from './consumers/company-deleted.handler.ts';
import { companyUpdated } from './consumers/company-updated.handler.ts';
import { contactCreated } from './consumers/contact-created.handler.ts';
import { contactDeleted } from './consumers/contact-deleted.handler.ts';
import { contactUpdated } from './consumers/contact-updated.handler.ts';
import { migrations } from './migrations/index.ts';
import { CompanyProjection, ContactProjection, OverviewContactCount, OverviewIndustryCount } from './overview/overview.entity.ts';
import { analyticsGrpc } from './overview/overview.grpc.ts';
import { OverviewService } from './overview/overview.service.ts';

/** Environment of analytics-svc. */
export const configSchema = z.object({ ...serviceEnv, GRPC_PORT: port(7055), OPS_PORT: port(9405) });
export type AnalyticsConfig = z.infer<typeof configSchema>;

/** Durable consumer name (and inbox key) of analytics-svc. */
export const ANALYTICS_CONSUMER = 'analytics-svc';

/**
 * Schema `analytics`: every table's entity (the platform's outbox and inbox too) and the committed
 * migrations that create them; the schema test holds the two to agreement.
 */
export const analyticsSchema = {
  schema: 'analytics',
  entities: [CompanyProjection, ContactProjection, OverviewIndustryCount, OverviewContactCount, OutboxMessage, InboxEntry],
  migrations,
};

/** Composition root: boots analytics-svc (schema `analytics`), consuming every `crm.>` event. */
export function createAnalyticsService(config: AnalyticsConfig = loadConfig(configSchema)): Promise<ServiceHandle> {
  return startService(
    {
      name: 'analytics-svc',
      ...analyticsSchema,
      relay: false,
      grpc: ({ orm }) => [analyticsGrpc(new OverviewService(orm))],
      consumers: () => [
        {
          durable: ANALYTICS_CONSUMER,
          filterSubject: 'crm.>',
          handlers: [companyCreated, companyUpdated, companyDeleted, contactCreated, contactUpdated, contactDeleted],
        },
      ],
    },
    config,
  );
}
