import { companyRecord, toProto } from '@crm/contracts';
import { DomainError, RecordService, recordEntity, requireContext, type EntityManager, type Orm } from '@crm/platform';
import { applyCustomerRules, customFieldConditions } from '../customer/customer.write.ts';
import { declareDuplicateSchema } from '../duplicate/duplicate.entities.ts';
import { assertNoLikelyDuplicate } from '../duplicate/duplicate.guard.ts';
import { assertNoHierarchyCycle } from './company.rules.ts';

/** `contacts.company`, derived from {@link companyRecord}; GIN indexes for tag and custom-field containment. */
export const CompanyEntity = recordEntity(companyRecord);
CompanyEntity.addIndex({ name: 'company_tags_idx', expression: 'create index company_tags_idx on company using gin (tags) where deleted_at is null' });
CompanyEntity.addIndex({
  name: 'company_custom_fields_idx',
  expression: 'create index company_custom_fields_idx on company using gin (custom_fields jsonb_path_ops) where deleted_at is null',
});
declareDuplicateSchema(CompanyEntity, 'company');

/**
 * Companies: the kit's record service plus the hierarchy rules — a company is never its own
 * ancestor (422 COMPANY_HIERARCHY_CYCLE), its parent is a live company (422
 * PARENT_COMPANY_NOT_FOUND), and it is not deleted while live subsidiaries point at it (422
 * COMPANY_HAS_SUBSIDIARIES). Each of these reads other rows than the one written, so writes that
 * set a parent and deletes take the organization's hierarchy lock first ({@link lockHierarchy}).
 *
 * A change of `status` or `priority` (also the first value, on create) emits
 * `crm.contacts.company.status_changed` / `…priority_changed` with from/to besides `updated`, so
 * automations and analytics react to the transition itself.
 */
export function companyService(orm: Orm): RecordService<typeof companyRecord.fields> {
  return new RecordService(orm, companyRecord, CompanyEntity, {
    hooks: {
      listConditions: (list) => customFieldConditions('company', list),
      beforeWrite: async ({ em, ctx, values, changed, existing, emit }) => {
        await applyCustomerRules('company', { em, ctx, values, changed, existing });
        values.mergedIntoId = existing?.mergedIntoId ?? null; // output only: set by merges
        if (!existing) await assertNoLikelyDuplicate(em, ctx.organizationId, 'company', values); // 409 unless allowed
        const fields = companyRecord.fields;
        if (changed.has('status') && values.status !== (existing?.status ?? null)) {
          const [from, to] = [toProto(fields.status, existing?.status ?? null), toProto(fields.status, values.status)];
          emit('status_changed', (row) => ({ companyId: row.id, from, to }));
        }
        if (changed.has('priority') && values.priority !== (existing?.priority ?? null)) {
          const [from, to] = [toProto(fields.priority, existing?.priority ?? null), toProto(fields.priority, values.priority)];
          emit('priority_changed', (row) => ({ companyId: row.id, from, to }));
        }
        if (!changed.has('parentCompanyId') || !values.parentCompanyId) return;
        await lockHierarchy(em);
        const ancestors = await ancestorsOf(em, values.parentCompanyId);
        // checked live before the lock; deleted since by a write that held it
        if (ancestors.length === 0) {
          throw new DomainError('rule_violation', 'PARENT_COMPANY_NOT_FOUND', `parentCompanyId ${values.parentCompanyId} not found`, [
            { field: 'parentCompanyId', message: 'no such record' },
          ]);
        }
        if (existing) assertNoHierarchyCycle(existing.id, ancestors);
      },
      beforeDelete: async ({ em, row }) => {
        await lockHierarchy(em);
        if ((await em.count(CompanyEntity, { parentCompanyId: row.id })) > 0) {
          throw new DomainError('rule_violation', 'COMPANY_HAS_SUBSIDIARIES', 'delete or re-parent its subsidiaries first');
        }
      },
    },
  });
}

/**
 * Takes the caller's organization's hierarchy lock until the transaction ends (a transaction-level
 * advisory lock on `contacts.company-hierarchy:<organization>`), so the hierarchy rules see every
 * hierarchy change committed before them. Without it they raced: with B under C, "A's parent := B"
 * and "C's parent := A" at once each found no cycle in what was committed and both stored theirs,
 * leaving the cycle A → B → C → A; a parent could be deleted while a subsidiary was being put
 * under it. Taken after the written row's lock (the kit locks first), and nothing taken after it
 * waits for another writer's row lock (foreign-key checks take `for key share`, which the kit's
 * `for no key update` row locks do not block), so it cannot deadlock.
 */
async function lockHierarchy(em: EntityManager): Promise<void> {
  await em.execute('select pg_advisory_xact_lock(hashtext(?))', [`contacts.company-hierarchy:${requireContext().organizationId}`]);
}

/**
 * Ids of `companyId` and its ancestors, nearest first (bounded at 64 levels), within the caller's
 * organization; empty when `companyId` is not a live company there.
 */
async function ancestorsOf(em: EntityManager, companyId: string): Promise<string[]> {
  const org = requireContext().organizationId;
  const rows = await em.execute<{ id: string }[]>(
    `with recursive up(id, parent, depth) as (
       select id, parent_company_id, 0 from contacts.company where id = ? and organization_id = ? and deleted_at is null
       union all
       select c.id, c.parent_company_id, up.depth + 1 from contacts.company c join up on c.id = up.parent where up.depth < 64 and c.organization_id = ?
     ) select id from up order by depth`,
    [companyId, org, org],
  );
  return rows.map((r) => r.id);
}
