import { customFieldRecord, type CustomFieldDefinitionValue, type CustomFieldObject } from '@crm/contracts';
import type { EntityManager } from '@crm/platform';
import { CustomFieldEntity } from './custom-field.service.ts';

/**
 * The custom field definitions of `object` in `organizationId` that records are validated against
 * (`validateCustomFields`): every live (not deleted) definition, inactive ones included and
 * flagged `active: false` — their stored values are kept and may be removed, never newly set.
 * One query, scoped to the organization explicitly (it does not depend on `em`'s tenant filter
 * parameters), ordered by key. Safe inside the write's transaction (pass the hook's `em`).
 */
export async function activeDefinitions(em: EntityManager, organizationId: string, object: CustomFieldObject): Promise<CustomFieldDefinitionValue[]> {
  const rows = await em.find(
    CustomFieldEntity,
    { organizationId, object },
    { filters: { tenant: { organizationId } }, orderBy: { key: 'asc' }, disableIdentityMap: true },
  );
  const keys = Object.keys(customFieldRecord.fields) as (keyof CustomFieldDefinitionValue)[];
  return rows.map((row) => Object.fromEntries(keys.map((k) => [k, row[k] ?? (k === 'options' ? [] : null)])) as CustomFieldDefinitionValue);
}
