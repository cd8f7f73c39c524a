import { Router } from 'express';
import { type analyticsV1 } from '@crm/contracts';
import { callUnary } from '@crm/platform';
import { z } from 'zod';
import { READ_ROLES, requireRole } from '../auth/tenant.ts';

export const overviewSchema = z
  .object({
    companyCount: z.int(),
    contactCount: z.int(),
    companiesByIndustry: z.array(z.object({ industry: z.string().nullable(), companyCount: z.int() })),
  })
  .meta({ id: 'AnalyticsOverview', description: 'counts projected from the event stream (eventually consistent, typically < 1 s behind)' });

/** `GET /api/v1/analytics/overview` over analytics-svc. */
export function analyticsRouter(client: analyticsV1.AnalyticsServiceClient, deadlineMs: number): Router {
  const router = Router();
  router.get('/overview', requireRole(...READ_ROLES), async (_req, res) => {
    const o = await callUnary(client, client.getOverview, {}, { deadlineMs });
    const body: z.infer<typeof overviewSchema> = {
      companyCount: Number(o.companyCount),
      contactCount: Number(o.contactCount),
      companiesByIndustry: o.companiesByIndustry.map((r) => ({ industry: r.industry || null, companyCount: Number(r.companyCount) })),
    };
    res.json(body);
  });
  return router;
}
