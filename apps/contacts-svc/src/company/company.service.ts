import { companyRecord } from '@crm/contracts';
import { DomainError, RecordService, recordEntity, requireContext, type EntityManager, type Orm } from '@crm/platform';
import { assertNoHierarchyCycle } from './company.rules.ts';

/** `contacts.company`, derived from {@link companyRecord}. */
export const CompanyEntity = recordEntity(companyRecord);

/**
 * Companies: the kit's record service plus the hierarchy rules — a company is never its own
 * ancestor (422 COMPANY_HIERARCHY_CYCLE) and is not deleted while live subsidiaries point at it
 * (422 COMPANY_HAS_SUBSIDIARIES).
 */
export function companyService(orm: Orm): RecordService<typeof companyRecord.fields> {
  return new RecordService(orm, companyRecord, CompanyEntity, {
    hooks: {
      beforeWrite: async ({ em, values, changed, existing }) => {
        if (existing && changed.has('parentCompanyId') && values.parentCompanyId) {
          assertNoHierarchyCycle(existing.id, await ancestorsOf(em, values.parentCompanyId));
        }
      },
      beforeDelete: async ({ em, row }) => {
        if ((await em.count(CompanyEntity, { parentCompanyId: row.id })) > 0) {
          throw new DomainError('rule_violation', 'COMPANY_HAS_SUBSIDIARIES', 'delete or re-parent its subsidiaries first');
        }
      },
    },
  });
}

/** Ids of `companyId` and its ancestors, nearest first (bounded at 64 levels), within the caller's organization. */
async function ancestorsOf(em: EntityManager, companyId: string): Promise<string[]> {
  const org = requireContext().organizationId;
  const rows = await em.execute<{ id: string }[]>(
    `with recursive up(id, parent, depth) as (
       select id, parent_company_id, 0 from contacts.company where id = ? and organization_id = ?
       union all
       select c.id, c.parent_company_id, up.depth + 1 from contacts.company c join up on c.id = up.parent where up.depth < 64 and c.organization_id = ?
     ) select id from up order by depth`,
    [companyId, org, org],
  );
  return rows.map((r) => r.id);
}
