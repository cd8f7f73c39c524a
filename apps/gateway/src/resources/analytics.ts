import { type analyticsV1 } from '@crm/contracts';
import { callUnary } from '@crm/platform';
import { z } from 'zod';
import { READ_ROLES } from '../auth/tenant.ts';
import { defineRoute, json, type Route } from '../http/route.ts';

export const overviewSchema = z
  .object({
    companyCount: z.int(),
    contactCount: z.int(),
    companiesByIndustry: z.array(z.object({ industry: z.string().nullable(), companyCount: z.int() })),
  })
  .meta({
    id: 'AnalyticsOverview',
    description: 'counts projected from the event stream (eventually consistent, typically < 1 s behind)',
    examples: [
      {
        companyCount: 85,
        contactCount: 312,
        companiesByIndustry: [
          { industry: 'technology', companyCount: 21 },
          { industry: 'retail', companyCount: 9 },
          { industry: null, companyCount: 3 },
        ],
      },
    ],
  });

/** `GET /api/v1/analytics/overview` (a singleton read) over analytics-svc. */
export function analyticsRoutes(client: analyticsV1.AnalyticsServiceClient, deadlineMs: number): Route[] {
  return [
    defineRoute({
      method: 'get',
      path: '/analytics/overview',
      operationId: 'getAnalyticsOverview',
      summary: 'Counts of companies and contacts (by industry)',
      description: 'Projected from the event stream: eventually consistent, typically less than a second behind the writes.',
      tag: 'analytics',
      roles: READ_ROLES,
      response: json(overviewSchema, { description: 'overview' }),
      handler: async () => {
        const o = await callUnary(client, client.getOverview, {}, { deadlineMs });
        return {
          companyCount: Number(o.companyCount),
          contactCount: Number(o.contactCount),
          companiesByIndustry: o.companiesByIndustry.map((r) => ({ industry: r.industry || null, companyCount: Number(r.companyCount) })),
        };
      },
    }),
  ];
}
