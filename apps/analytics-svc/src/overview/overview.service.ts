import { requestEntityManager, requireContext, type Orm } from '@crm/platform';

/** Counts of the caller's organization as projected from events. */
export interface Overview {
  companyCount: number;
  contactCount: number;
  companiesByIndustry: { industry: string; companyCount: number }[];
}

/** Reads the overview projection (tenant-scoped) from its maintained counters: cost independent of the number of records. */
export class OverviewService {
  readonly #orm: Orm;

  constructor(orm: Orm) {
    this.#orm = orm;
  }

  /** Company and contact counts, and companies per industry (largest first, then by name). */
  async get(): Promise<Overview> {
    const em = requestEntityManager(this.#orm);
    const org = requireContext().organizationId;
    const byIndustry = await em.execute<{ industry: string; n: string }[]>(
      'select industry, company_count as n from analytics.overview_industry_count where organization_id = ? and company_count > 0 order by company_count desc, industry',
      [org],
    );
    const [contacts] = await em.execute<{ n: string }[]>('select contact_count as n from analytics.overview_contact_count where organization_id = ?', [org]);
    const companiesByIndustry = byIndustry.map((r) => ({ industry: r.industry, companyCount: Number(r.n) }));
    return {
      companyCount: companiesByIndustry.reduce((sum, r) => sum + r.companyCount, 0),
      contactCount: Number(contacts?.n ?? 0),
      companiesByIndustry,
    };
  }
}
