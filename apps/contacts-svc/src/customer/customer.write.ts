import { customFieldFilter, validateCustomFields } from '@crm/contracts';
import { DomainError, type EntityManager, type FieldViolation, type RequestContext } from '@crm/platform';
import { activeDefinitions } from '../custom-field/definitions.ts';
import { tagsToAssign } from '../tag/tag-rules.apply.ts';
import { distinctTags } from './customer.rules.ts';

/** What the company and contact write hooks share: the values written and what changed. */
export interface CustomerWrite {
  em: EntityManager;
  ctx: RequestContext;
  values: { tags: string[]; customFields: Record<string, unknown> | null } & Record<string, unknown>;
  changed: ReadonlySet<string>;
  existing: { tags: string[]; customFields: Record<string, unknown> | null } | undefined;
}

/**
 * The customer-master rules of a company or contact write, in the write's transaction:
 *
 * 1. **Custom fields** (on create, and on updates that send `customFields`): validated against the
 *    organization's definitions for `object` (`validateCustomFields`): unknown keys, wrong types,
 *    missing required values are 400 naming `customFields.<key>`; an update merges the keys sent
 *    into the stored object (`null` removes one); defaults apply on create.
 * 2. **Tags**: assigned once each; every tag newly assigned must be a live tag of the caller's
 *    organization (422 `TAG_NOT_FOUND` naming `tags` — another tenant's tag id is "not found" too).
 * 3. **Tag rules**: tags whose active rules match the record's new values (on create, or when a
 *    watched field changes: `tagsToAssign`) are added.
 */
export async function applyCustomerRules(object: 'company' | 'contact', write: CustomerWrite): Promise<void> {
  const { em, ctx, values, changed, existing } = write;
  const org = ctx.organizationId;
  if (!existing || changed.has('customFields')) {
    const result = validateCustomFields(await activeDefinitions(em, org, object), values.customFields, existing?.customFields ?? null);
    if ('errors' in result) throw new DomainError('invalid_argument', 'VALIDATION_FAILED', `invalid ${object}`, result.errors);
    values.customFields = Object.keys(result.values).length ? result.values : null;
  }
  const byRule = await tagsToAssign(em, org, object, values, changed, !existing);
  const tags = distinctTags([...values.tags, ...byRule]);
  const before = new Set(existing?.tags ?? []);
  const added = tags.filter((t) => !before.has(t) && !byRule.includes(t));
  if (added.length) {
    const found = await em.execute<{ id: string }[]>('select id from contacts.tag where organization_id = ? and id = any(?::uuid[]) and deleted_at is null', [
      org,
      `{${added.join(',')}}`,
    ]);
    const missing = added.filter((t) => !found.some((f) => f.id === t));
    if (missing.length) {
      throw new DomainError('rule_violation', 'TAG_NOT_FOUND', `tags ${missing.join(', ')} not found`, [
        { field: 'tags', message: `no such tag: ${missing.join(', ')}` },
      ]);
    }
  }
  values.tags = tags;
}

/**
 * The JSON containment condition of a list's custom-field filters (`cf.<key>=<text>`): each key must
 * name a definition of the organization for `object` (400 naming `cf.<key>` otherwise) and the text
 * must fit its type (`customFieldFilter`: numbers and booleans parsed, a multiselect matches records
 * holding that option). All conditions must hold; served by the `custom_fields` GIN index.
 */
export async function customFieldConditions(
  object: 'company' | 'contact',
  list: { em: EntityManager; ctx: RequestContext; customFields: Readonly<Record<string, string>> },
): Promise<{ key: string; value: object }[]> {
  const definitions = await activeDefinitions(list.em, list.ctx.organizationId, object);
  const contains: Record<string, unknown> = {};
  const violations: FieldViolation[] = [];
  for (const [key, raw] of Object.entries(list.customFields)) {
    const definition = definitions.find((d) => d.key === key);
    const filter = definition ? customFieldFilter(definition, raw) : { error: 'no such custom field' };
    if ('error' in filter) violations.push({ field: `cf.${key}`, message: filter.error });
    else Object.assign(contains, filter.contains);
  }
  if (violations.length) throw new DomainError('invalid_argument', 'INVALID_LIST_QUERY', 'invalid custom field filter', violations);
  return [{ key: 'customFields', value: contains }];
}
