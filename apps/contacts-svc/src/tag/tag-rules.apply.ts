import type { EntityManager } from '@crm/platform';
import { watchedValues, type TagRuleObjectName } from './tag.rules.ts';

/**
 * The tags the organization's tag rules assign to a company or contact being written — for the
 * company and contact services' `beforeWrite` hooks, which add them to the record's `tags`.
 *
 * Matching rule: a tag is returned when an active rule of `organizationId` for `object` names a
 * watched field (`TAG_RULE_FIELDS` in tag.rules.ts) whose value in `values` equals the rule's
 * `value` ignoring case, and the rule's tag is live (not deleted) and active. On create
 * (`isCreate`) every watched field with a value counts; on update only the fields in `changed`
 * (field-table keys, camelCase: `accountType`) — a rule fires when its field changes to its
 * value, not on every later edit of the record.
 *
 * `values` are the record's values in the records kit's shapes (enums as lower-case names such as
 * `customer`, booleans as booleans — compared as the text `true`/`false`, numbers in decimal);
 * absent values match nothing. Returns distinct tag ids in id order; tags the record already
 * carries are not left out (the caller merges). One query on `em` (the write's transaction), none
 * when no watched field has a value; scoped by `organizationId` explicitly (raw SQL bypasses the
 * tenant filter).
 */
export async function tagsToAssign(
  em: EntityManager,
  organizationId: string,
  object: TagRuleObjectName,
  values: Record<string, unknown>,
  changed: ReadonlySet<string>,
  isCreate: boolean,
): Promise<string[]> {
  const watched = watchedValues(object, values, changed, isCreate);
  if (watched.length === 0) return [];
  const rows = await em.execute<{ id: string }[]>(
    `select distinct t.id
       from contacts.tag_rule r
       join contacts.tag t on t.id = r.tag_id and t.organization_id = r.organization_id
       join jsonb_to_recordset(cast(? as jsonb)) as w(field text, value text) on w.field = r.field and lower(w.value) = lower(r.value)
      where r.organization_id = ? and r.object = ? and r.active and t.active and t.deleted_at is null
      order by t.id`,
    [JSON.stringify(watched), organizationId, object],
  );
  return rows.map((r) => r.id);
}
