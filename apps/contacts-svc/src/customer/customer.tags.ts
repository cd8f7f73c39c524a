import type { FieldSpec } from '@crm/contracts';
import { DomainError, isUuid, type RecordInput, type RecordRow, type RecordService } from '@crm/platform';

/** A record service of companies or contacts: anything with a `tags` field. */
type Tagged = Record<string, FieldSpec> & { tags: { kind: 'tags' } };

/**
 * Assigns tag `tagId` to the company or contact `id`, through the record's own update path
 * (`updateWith`: row lock, version check, ownership, the customer rules, `updated` event with
 * field `tags` and its old and new list). The new list is computed from the tags stored when
 * the row lock is held, so two concurrent assignments both land. Idempotent: an assigned tag
 * changes nothing (no version bump, no event). Errors: NOT_FOUND, PERMISSION_DENIED,
 * VERSION_MISMATCH (stale `expectedVersion`), 422 `TAG_NOT_FOUND` (no live tag of the
 * organization, another tenant's included).
 */
export function assignTag<F extends Tagged>(service: RecordService<F>, id: string, tagId: string, expectedVersion?: number): Promise<RecordRow<F>> {
  const tag = tagId.toLowerCase();
  if (!isUuid(tag)) throw new DomainError('rule_violation', 'TAG_NOT_FOUND', `tag ${tagId} not found`, [{ field: 'tagId', message: 'no such tag' }]);
  return service.updateWith(
    id,
    (current) => {
      const tags = tagsOf(current);
      return tags.includes(tag) ? undefined : { input: { tags: [...tags, tag] } as RecordInput<F>, mask: ['tags'] };
    },
    expectedVersion,
  );
}

/**
 * Removes tag `tagId` from the company or contact `id`, as {@link assignTag} adds one. Idempotent:
 * a tag not assigned (any id, even one of no tag) changes nothing. Errors: NOT_FOUND,
 * PERMISSION_DENIED, VERSION_MISMATCH.
 */
export function unassignTag<F extends Tagged>(service: RecordService<F>, id: string, tagId: string, expectedVersion?: number): Promise<RecordRow<F>> {
  const tag = tagId.toLowerCase();
  return service.updateWith(
    id,
    (current) => {
      const tags = tagsOf(current);
      return tags.includes(tag) ? { input: { tags: tags.filter((t) => t !== tag) } as RecordInput<F>, mask: ['tags'] } : undefined;
    },
    expectedVersion,
  );
}

function tagsOf(values: object): string[] {
  const tags: unknown = (values as { tags?: unknown }).tags;
  return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : [];
}
