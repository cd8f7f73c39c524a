import { analyticsV1 } from '@crm/contracts';
import { bindService, type ServiceBinding } from '@crm/platform';
import type { OverviewService } from './overview.service.ts';

/** gRPC edge of the analytics read side. */
export function analyticsGrpc(service: OverviewService): ServiceBinding {
  return bindService('crm.analytics.v1.AnalyticsService', analyticsV1.AnalyticsServiceService, {
    getOverview: async () => {
      const o = await service.get();
      return {
        companyCount: String(o.companyCount),
        contactCount: String(o.contactCount),
        companiesByIndustry: o.companiesByIndustry.map((r) => ({ industry: r.industry, companyCount: String(r.companyCount) })),
      };
    },
  });
}
