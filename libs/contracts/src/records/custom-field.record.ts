import * as customFieldV1 from '../gen/crm/contacts/v1/custom_field.ts';
import * as events from '../gen/crm/events/v1/custom_fields.ts';
import type { ValuesOf } from './fields.ts';
import { defineRecord } from './record.ts';

/**
 * Custom field definitions of contacts-svc (Salesforce's "CustomField" metadata): table
 * `contacts.custom_field`, REST `/api/v1/custom-fields`, writes by crm-admin only. Each defines
 * one key of the `customFields` object of companies or contacts; values are checked against the
 * definitions by {@link validateCustomFields} (custom-fields.ts). The rules the kinds cannot say —
 * key pattern, uniqueness per object, immutable key/object/type, options vs type, a default valid
 * for its type — are contacts-svc's (custom-field/custom-field.rules.ts).
 */
export const customFieldRecord = defineRecord<customFieldV1.CustomField>()({
  name: 'customField',
  plural: 'customFields',
  domain: 'contacts',
  softDelete: true,
  service: customFieldV1.CustomFieldServiceService,
  events: { created: events.CustomFieldCreated, updated: events.CustomFieldUpdated, deleted: events.CustomFieldDeleted },
  writeRoles: ['crm-admin'],
  fields: {
    object: { kind: 'enum', values: customFieldV1.CustomFieldObject, filter: true, description: 'the kind of record it extends; immutable' },
    key: {
      kind: 'text',
      max: 63,
      required: true,
      search: true,
      description: 'key in the records’ customFields: ^[a-z][a-z0-9_]{0,62}$, unique per object among live definitions; immutable',
    },
    label: { kind: 'text', max: 200, required: true, search: true },
    type: { kind: 'enum', values: customFieldV1.CustomFieldType, description: 'type of the values; immutable' },
    options: { kind: 'strings', max: 500, itemMax: 200, description: 'choices of a select or multiselect field: non-empty, distinct; empty otherwise' },
    required: { kind: 'bool', description: 'records must carry a value' },
    defaultValue: { kind: 'value', description: 'applied when a record is created without the field; valid for the type' },
    description: { kind: 'text', max: 1000 },
    active: { kind: 'bool', default: true, description: 'inactive fields accept no new values; stored values are kept' },
  },
});

/** The values of one custom field definition (the kit's one value shape), as stored and served. */
export type CustomFieldDefinitionValue = ValuesOf<typeof customFieldRecord.fields>;

/** The value types of custom fields (`CustomFieldType` names). */
export type CustomFieldType = NonNullable<CustomFieldDefinitionValue['type']>;

/** The objects custom fields extend (`CustomFieldObject` names). */
export type CustomFieldObject = NonNullable<CustomFieldDefinitionValue['object']>;
