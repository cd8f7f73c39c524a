import * as tagRuleV1 from '../gen/crm/contacts/v1/tag_rule.ts';
import * as events from '../gen/crm/events/v1/tags.ts';
import { defineRecord } from './record.ts';

/**
 * Tag rules of contacts-svc: "when a company/contact is created, or its `field` changes, and the
 * field then holds `value` (ignoring case), assign tag `tagId`". Table `contacts.tag_rule`, REST
 * `/api/v1/tag-rules`; rows are deleted (no undo expected of configuration). Only crm-admin writes
 * them. Which `field` fits which `object` (and the `value` of a yes/no field) is checked by
 * contacts-svc (tag.rules.ts, `TAG_RULE_FIELDS`), which also applies the rules (tag-rules.apply.ts).
 */
export const tagRuleRecord = defineRecord<tagRuleV1.TagRule>()({
  name: 'tagRule',
  plural: 'tagRules',
  domain: 'contacts',
  softDelete: false,
  service: tagRuleV1.TagRuleServiceService,
  events: { created: events.TagRuleCreated, updated: events.TagRuleUpdated, deleted: events.TagRuleDeleted },
  writeRoles: ['crm-admin'],
  fields: {
    object: { kind: 'enum', values: tagRuleV1.TagRuleObject, filter: true, description: 'the kind of record watched (required)' },
    field: { kind: 'enum', values: tagRuleV1.TagRuleField, description: 'the field watched (required); must be one of the object’s' },
    value: { kind: 'text', max: 100, required: true, description: 'the value that assigns the tag, compared ignoring case (e.g. customer, true)' },
    tagId: { kind: 'ref', to: 'Tag', filter: true, description: 'the tag assigned (required)' },
    active: { kind: 'bool', default: true, description: 'inactive rules assign nothing; default true' },
  },
});
