import { customFieldRecord, type CustomFieldDefinitionValue } from '@crm/contracts';
import { DomainError, RecordService, recordEntity, type EntityManager, type Orm } from '@crm/platform';
import { assertValidDefinition } from './custom-field.rules.ts';

/**
 * `contacts.custom_field`, derived from {@link customFieldRecord}, plus the one index the kit's
 * `unique` cannot say: `custom_field_key_uq`, a key is unique per organization AND object among
 * live definitions (a company and a contact field may share a key).
 */
export const CustomFieldEntity = recordEntity(customFieldRecord);
CustomFieldEntity.addUnique({ name: 'custom_field_key_uq', properties: ['organizationId', 'object', 'key'], where: 'deleted_at is null' });

/**
 * Custom field definitions: the kit's record service (writes crm-admin only, from the declaration)
 * plus the definition rules ({@link assertValidDefinition}: 400 naming the field) and key
 * uniqueness per object: 409 `CUSTOM_FIELD_KEY_TAKEN` naming `key`. The uniqueness check holds a
 * transaction-level advisory lock on (organization, object, key), so two concurrent creates of one
 * key queue and the second gets the 409 (the unique index stays as the last line of defence).
 */
export function customFieldService(orm: Orm): RecordService<typeof customFieldRecord.fields> {
  return new RecordService(orm, customFieldRecord, CustomFieldEntity, {
    hooks: {
      beforeWrite: async ({ em, ctx, values, changed, existing }) => {
        assertValidDefinition(values, changed, existing === undefined);
        if (existing === undefined) await assertKeyFree(em, ctx.organizationId, values);
      },
    },
  });
}

async function assertKeyFree(em: EntityManager, organizationId: string, values: CustomFieldDefinitionValue): Promise<void> {
  await em.execute('select pg_advisory_xact_lock(hashtext(?))', [`contacts.custom-field-key:${organizationId}:${values.object}:${values.key}`]);
  if ((await em.count(CustomFieldEntity, { object: values.object, key: values.key })) > 0) {
    throw new DomainError('conflict', 'CUSTOM_FIELD_KEY_TAKEN', `a ${values.object} field with key ${values.key} exists`, [
      { field: 'key', message: `already used by another ${values.object} field` },
    ]);
  }
}
