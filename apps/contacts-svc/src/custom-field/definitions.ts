import type { CustomFieldDefinitionValue, CustomFieldObject } from '@crm/contracts';
import type { EntityManager } from '@crm/platform';

/**
 * The custom field definitions of `object` in `organizationId` that records are validated against
 * (`validateCustomFields`): every live (not deleted) definition, inactive ones included and
 * flagged `active: false` — their stored values are kept and may be removed, never newly set.
 * One query, scoped to the organization explicitly (it does not depend on `em`'s tenant filter
 * parameters), ordered by key. Safe inside the write's transaction (pass the hook's `em`).
 */
export async function activeDefinitions(em: EntityManager, organizationId: string, object: CustomFieldObject): Promise<CustomFieldDefinitionValue[]> {
  // one plain statement, no unit of work: this runs inside every company and contact write
  const rows = await em.execute<
    {
      object: string | null;
      key: string;
      label: string;
      type: string | null;
      options: string[] | null;
      required: boolean;
      default_value: unknown;
      description: string | null;
      active: boolean;
    }[]
  >(
    `select object, key, label, type, options, required, default_value, description, active
       from contacts.custom_field
      where organization_id = ? and object = ? and deleted_at is null
      order by key`,
    [organizationId, object],
  );
  return rows.map((row): CustomFieldDefinitionValue => ({
    object: row.object as CustomFieldDefinitionValue['object'],
    key: row.key,
    label: row.label,
    type: row.type as CustomFieldDefinitionValue['type'],
    options: row.options ?? [],
    required: row.required,
    defaultValue: (row.default_value ?? null) as CustomFieldDefinitionValue['defaultValue'],
    description: row.description,
    active: row.active,
  }));
}
