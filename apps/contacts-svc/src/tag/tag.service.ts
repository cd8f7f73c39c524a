import { tagRecord } from '@crm/contracts';
import { DomainError, RecordService, recordEntity, recordEntityNamed, type Orm } from '@crm/platform';
import { normaliseColor } from './tag.rules.ts';

/** `contacts.tag`, derived from {@link tagRecord} (unique index `tag_name_uq` on lower(name) among live tags). */
export const TagEntity = recordEntity(tagRecord);

/**
 * Tags: the kit's record service (crm-admin writes; a name taken regardless of case is 409
 * TAG_NAME_TAKEN from the database's unique index) plus the tag's own rules: the color is
 * `#rrggbb`, stored lower-cased (400 naming `color` otherwise), and a tag is not deleted while tag
 * rules assign it (422 TAG_HAS_RULES: delete or re-point them first). A rule being written for the
 * tag holds a share lock on its row (tag-rule.service.ts), so the delete's check cannot miss it.
 */
export function tagService(orm: Orm): RecordService<typeof tagRecord.fields> {
  return new RecordService(orm, tagRecord, TagEntity, {
    hooks: {
      beforeWrite: ({ values, changed }) => {
        if (changed.has('color')) values.color = normaliseColor(values.color);
      },
      beforeDelete: async ({ em, row }) => {
        // by name: TagRule's entity is built after this one (its foreign key needs Tag's first)
        if ((await em.count(recordEntityNamed('TagRule'), { tagId: row.id })) > 0) {
          throw new DomainError('rule_violation', 'TAG_HAS_RULES', 'tag rules assign this tag: delete or re-point them first');
        }
      },
    },
  });
}
