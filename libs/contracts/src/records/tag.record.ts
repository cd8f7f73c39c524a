import * as tagV1 from '../gen/crm/contacts/v1/tag.ts';
import * as events from '../gen/crm/events/v1/tags.ts';
import { defineRecord } from './record.ts';

/**
 * Tags of contacts-svc (labels of the organization's own, put on companies and contacts): table
 * `contacts.tag`, REST `/api/v1/tags`. Configuration (architecture "Tenancy and identity"): only
 * crm-admin writes them. The name is unique among live tags regardless of case (409
 * `TAG_NAME_TAKEN`, enforced by the unique index `tag_name_uq` on `lower(name)`); the color's
 * `#rrggbb` rule and its lower-casing are contacts-svc's (tag.rules.ts).
 */
export const tagRecord = defineRecord<tagV1.Tag>()({
  name: 'tag',
  plural: 'tags',
  domain: 'contacts',
  softDelete: true,
  service: tagV1.TagServiceService,
  events: { created: events.TagCreated, updated: events.TagUpdated, deleted: events.TagDeleted },
  writeRoles: ['crm-admin'],
  fields: {
    name: {
      kind: 'text',
      max: 100,
      required: true,
      search: true,
      unique: 'TAG_NAME_TAKEN',
      caseInsensitive: true,
      description: 'unique among the organization’s live tags, ignoring case',
    },
    color: { kind: 'text', max: 7, description: '`#rrggbb` (stored lower case), e.g. #1e90ff' },
    description: { kind: 'text', max: 500 },
    active: { kind: 'bool', default: true, description: 'inactive tags are not assigned by tag rules; default true' },
  },
});
