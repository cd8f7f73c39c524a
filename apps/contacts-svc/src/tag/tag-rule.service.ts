import { tagRuleRecord } from '@crm/contracts';
import { DomainError, RecordService, recordEntity, requireContext, type EntityManager, type Orm } from '@crm/platform';
// builds TagEntity first: the foreign key of TagRuleEntity's tagId needs its target when built
import './tag.service.ts';
import { assertTagRuleFits } from './tag.rules.ts';

/** `contacts.tag_rule`, derived from {@link tagRuleRecord} (foreign key to `contacts.tag`). */
export const TagRuleEntity = recordEntity(tagRuleRecord);

/**
 * Tag rules: the kit's record service (crm-admin writes; `tagId` must name a live tag of the
 * caller's organization, else 422 TAG_NOT_FOUND — also for another organization's tag) plus the
 * rule's own checks ({@link assertTagRuleFits}: 400 naming the field). Rules are applied by
 * tag-rules.apply.ts.
 */
export function tagRuleService(orm: Orm): RecordService<typeof tagRuleRecord.fields> {
  return new RecordService(orm, tagRuleRecord, TagRuleEntity, {
    hooks: {
      beforeWrite: async ({ em, values, changed }) => {
        assertTagRuleFits(values);
        if (changed.has('tagId') && values.tagId) await lockLiveTag(em, values.tagId);
      },
    },
  });
}

/**
 * Holds a share lock on live tag `tagId` of the caller's organization until the transaction ends,
 * so a concurrent delete of the tag (which locks the row `for no key update` and then counts its
 * rules) either waits for this rule and sees it, or committed first and this write fails with 422
 * TAG_NOT_FOUND. The kit's reference check alone read the tag without a lock: a rule could be
 * stored for a tag deleted in the same instant.
 */
async function lockLiveTag(em: EntityManager, tagId: string): Promise<void> {
  const rows = await em.execute<{ id: string }[]>('select id from contacts.tag where id = ? and organization_id = ? and deleted_at is null for share', [
    tagId,
    requireContext().organizationId,
  ]);
  if (rows.length === 0) throw new DomainError('rule_violation', 'TAG_NOT_FOUND', `tagId ${tagId} not found`, [{ field: 'tagId', message: 'no such record' }]);
}
