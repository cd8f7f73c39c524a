import * as segmentV1 from '../gen/crm/contacts/v1/segment.ts';
import * as events from '../gen/crm/events/v1/segments.ts';
import type { ValuesOf } from './fields.ts';
import { defineRecord } from './record.ts';

/**
 * The criteria format of dynamic segments, as documented to API clients (OpenAPI). The one
 * implementation — field registry, validation and compilation to SQL — is contacts-svc's
 * (apps/contacts-svc/src/segment/segment.criteria.ts), whose module comment is the reference.
 */
export const SEGMENT_CRITERIA_DESCRIPTION = [
  'dynamic segments only (required there, refused for static ones). A group `{ "all": [...] }` (every item holds) or `{ "any": [...] }` (at least one holds);',
  'items are groups (nesting depth ≤ 4) or conditions `{ "field", "op", "value" }`, at most 50 conditions in all.',
  'Fields and ops: `tags` (any | all | none; value: tag ids);',
  'enums `accountType`, `status`, `priority`, `rating` (companies), `source` (both), `preferredContactMethod` (contacts) (eq | in | not_in; values as served);',
  '`industry`, `country`, `city` (companies: address country and city) (eq | in | contains, case-insensitive); `ownerId` (eq | in);',
  '`createdAt`, `updatedAt`, `lastContactedAt` (before | after: ISO 8601 date or instant; between: [from, to]; within_days | not_within_days: whole days; is_empty: true/false);',
  'custom fields `cf.<key>` of the object’s definitions, by type: text, url, email (eq | in | contains | is_empty), number, decimal, date (eq | in | gt | lt | between | is_empty),',
  'boolean (eq | is_empty), select (eq | in | is_empty), multiselect (contains | in | is_empty).',
  'A field the object lacks is refused. Example: { "all": [ { "field": "tags", "op": "any", "value": ["0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f10"] }, { "any": [ { "field": "status", "op": "eq", "value": "active" }, { "field": "lastContactedAt", "op": "within_days", "value": 30 } ] } ] }',
].join(' ');

/**
 * Segments of contacts-svc (saved sets of companies or of contacts, HubSpot's "lists"): table
 * `contacts.segment`, REST `/api/v1/segments`; static members in `contacts.segment_member`. Written
 * by crm-admin and crm-manager. `object` and `kind` are immutable and `criteria` belongs to
 * dynamic segments only (contacts-svc's segment.rules.ts); `memberCount` is output only.
 */
export const segmentRecord = defineRecord<segmentV1.Segment>()({
  name: 'segment',
  plural: 'segments',
  domain: 'contacts',
  softDelete: true,
  service: segmentV1.SegmentServiceService,
  events: {
    created: events.SegmentCreated,
    updated: events.SegmentUpdated,
    deleted: events.SegmentDeleted,
    member_added: events.SegmentMemberAdded,
    member_removed: events.SegmentMemberRemoved,
  },
  writeRoles: ['crm-admin', 'crm-manager'],
  fields: {
    name: { kind: 'text', max: 200, required: true, search: true },
    description: { kind: 'text', max: 2000 },
    object: { kind: 'enum', values: segmentV1.SegmentObject, filter: true, description: 'the kind of record it groups: company or contact; immutable' },
    kind: {
      kind: 'enum',
      values: segmentV1.SegmentKind,
      filter: true,
      description: 'dynamic (members are the records matching criteria, evaluated on read) or static (members added by hand); immutable',
    },
    criteria: { kind: 'json', description: SEGMENT_CRITERIA_DESCRIPTION },
    memberCount: {
      kind: 'int',
      min: 0,
      description: 'output only (ignored on input): live members — counted on read for dynamic segments, maintained for static ones',
    },
  },
});

/** The values of one segment (the kit's one value shape). */
export type SegmentValues = ValuesOf<typeof segmentRecord.fields>;

/** The objects a segment groups (`SegmentObject` names). */
export type SegmentObjectName = NonNullable<SegmentValues['object']>;
