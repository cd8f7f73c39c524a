import { contactRecord } from '@crm/contracts';
import { DomainError, RecordService, recordEntity, requireContext, type EntityManager, type Orm, type RecordRow, type WriteContext } from '@crm/platform';
import { assertPlausibleBirthDate, marketingPreferences, socialProfiles } from '../customer/customer.rules.ts';
import { applyCustomerRules, customFieldConditions } from '../customer/customer.write.ts';
import { declareDuplicateSchema } from '../duplicate/duplicate.entities.ts';
import { assertNoLikelyDuplicate } from '../duplicate/duplicate.guard.ts';
import { assertHasAName } from './contact.rules.ts';

type ContactFields = typeof contactRecord.fields;

/**
 * `contacts.contact`, derived from {@link contactRecord}; GIN indexes for tag and custom-field
 * containment, and `contact_primary_uq`: at most one live primary contact per company, enforced by
 * the database.
 */
export const ContactEntity = recordEntity(contactRecord);
ContactEntity.addIndex({ name: 'contact_tags_idx', expression: 'create index contact_tags_idx on contact using gin (tags) where deleted_at is null' });
ContactEntity.addIndex({
  name: 'contact_custom_fields_idx',
  expression: 'create index contact_custom_fields_idx on contact using gin (custom_fields jsonb_path_ops) where deleted_at is null',
});
ContactEntity.addUnique({
  name: 'contact_primary_uq',
  properties: ['organizationId', 'companyId'],
  where: 'deleted_at is null and is_primary and company_id is not null',
});
declareDuplicateSchema(ContactEntity, 'contact');

/**
 * Contacts: the kit's record service plus their own rules — a name (first or last), a plausible
 * date of birth, marketing consent stamped with the time it was given or withdrawn, checked social
 * profiles, and one primary contact per company: making a contact primary (or moving a primary
 * contact to another company) unsets the company's previous primary in the same transaction, which
 * the events say (`updated` for both contacts, then `primary_changed`). Concurrent writers of one
 * company's primary contact are serialized by a transaction-level advisory lock, so the last one
 * wins rather than failing on `contact_primary_uq`. A primary contact needs a company (422
 * PRIMARY_CONTACT_NEEDS_COMPANY).
 */
export function contactService(orm: Orm): RecordService<ContactFields> {
  const service: RecordService<ContactFields> = new RecordService(orm, contactRecord, ContactEntity, {
    hooks: {
      listConditions: (list) => customFieldConditions('contact', list),
      beforeWrite: async ({ em, ctx, values, changed, existing, emit }) => {
        await applyCustomerRules('contact', { em, ctx, values, changed, existing });
        values.mergedIntoId = existing?.mergedIntoId ?? null; // output only: set by merges
        if (changed.has('firstName') || changed.has('lastName')) assertHasAName(values.firstName, values.lastName);
        if (changed.has('dateOfBirth')) assertPlausibleBirthDate(values.dateOfBirth, new Date());
        if (changed.has('marketingPreferences')) {
          values.marketingPreferences = marketingPreferences(values.marketingPreferences, existing?.marketingPreferences ?? null, new Date());
        }
        if (changed.has('socialProfiles')) values.socialProfiles = socialProfiles(values.socialProfiles);
        if (values.isPrimary && !values.companyId) {
          throw new DomainError('rule_violation', 'PRIMARY_CONTACT_NEEDS_COMPANY', 'only a contact of a company can be its primary contact', [
            { field: 'isPrimary', message: 'set companyId too' },
          ]);
        }
        if (!existing) await assertNoLikelyDuplicate(em, ctx.organizationId, 'contact', values); // 409 unless allowed
        const becomesPrimary = values.isPrimary && (!existing?.isPrimary || changed.has('companyId'));
        if (becomesPrimary && values.companyId) await demotePrimary(em, service, values.companyId, existing?.id, emit);
      },
    },
  });
  return service;
}

/**
 * Unsets the primary contact of `companyId` (other than `self`), under the company's primary-contact
 * lock, and emits its `updated` event and the company's `primary_changed` (the new primary is the
 * record being written).
 */
async function demotePrimary(
  em: EntityManager,
  service: RecordService<ContactFields>,
  companyId: string,
  self: string | undefined,
  emit: WriteContext<ContactFields>['emit'],
): Promise<void> {
  const org = requireContext().organizationId;
  await em.execute('select pg_advisory_xact_lock(hashtext(?))', [`contacts.primary-contact:${org}:${companyId}`]);
  const demoted = await em.execute<{ id: string }[]>(
    `update contacts.contact set is_primary = false, version = version + 1, updated_at = now()
     where organization_id = ? and company_id = ? and is_primary and deleted_at is null and id is distinct from ?
     returning id`,
    [org, companyId, self ?? null],
  );
  const previous = demoted[0]?.id;
  if (previous) {
    const row = (await em.findOneOrFail(ContactEntity, { id: previous }, { refresh: true })) as unknown as RecordRow<ContactFields>;
    emit(
      'updated',
      () => ({ contact: service.toMessage(row), changedFields: ['is_primary'], changes: [{ field: 'is_primary', oldValue: true, newValue: false }] }),
      previous,
    );
  }
  emit('primary_changed', (row) => ({ companyId, contactId: row.id, previousContactId: previous ?? '' }));
}
