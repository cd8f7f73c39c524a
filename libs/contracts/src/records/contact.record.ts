import * as commonV1 from '../gen/crm/common/v1/common.ts';
import * as contactV1 from '../gen/crm/contacts/v1/contact.ts';
import * as events from '../gen/crm/events/v1/contacts.ts';
import { defineRecord } from './record.ts';

/**
 * Contacts (people) of contacts-svc — of a company, or individual clients with none: table
 * `contacts.contact`, REST `/api/v1/contacts`.
 */
export const contactRecord = defineRecord<contactV1.Contact>()({
  name: 'contact',
  plural: 'contacts',
  domain: 'contacts',
  softDelete: true,
  service: contactV1.ContactServiceService,
  events: {
    created: events.ContactCreated,
    updated: events.ContactUpdated,
    deleted: events.ContactDeleted,
    primary_changed: events.ContactPrimaryChanged,
  },
  sorts: { name: ['lastName', 'firstName'], createdAt: ['createdAt'], updatedAt: ['updatedAt'], lastContactedAt: ['lastContactedAt'] },
  fields: {
    firstName: { kind: 'text', max: 100, blank: '', search: true },
    lastName: { kind: 'text', max: 100, blank: '', search: true },
    email: { kind: 'email', search: true, unique: 'CONTACT_EMAIL_TAKEN' },
    phone: { kind: 'text', max: 50, format: 'phone', search: true, description: 'international format; stored as E.164' },
    phoneOriginal: { kind: 'text', max: 50, originalOf: 'phone', description: 'the phone number as typed (output only)' },
    mobile: { kind: 'text', max: 50, format: 'phone', search: true, description: 'international format; stored as E.164' },
    mobileOriginal: { kind: 'text', max: 50, originalOf: 'mobile', description: 'the mobile number as typed (output only)' },
    jobTitle: { kind: 'text', max: 200 },
    department: { kind: 'text', max: 100 },
    companyId: { kind: 'ref', to: 'Company', filter: true },
    isPrimary: { kind: 'bool', description: 'the company’s primary contact (at most one; making one primary unsets the other)' },
    isDecisionMaker: { kind: 'bool' },
    doNotCall: { kind: 'bool' },
    emailOptOut: { kind: 'bool' },
    preferredContactMethod: { kind: 'enum', values: contactV1.ContactMethod, filter: true },
    preferredLanguage: { kind: 'text', max: 35, format: 'language', description: 'BCP 47 language tag' },
    timezone: { kind: 'text', max: 64, format: 'timezone', description: 'IANA time zone' },
    dateOfBirth: { kind: 'date' },
    gender: { kind: 'text', max: 50 },
    nationality: { kind: 'text', max: 2, format: 'country', description: 'ISO 3166-1 alpha-2' },
    marketingPreferences: {
      kind: 'json',
      description:
        'consent per channel (newsletter, promotions, reminders, birthdayMessages): write booleans, read { granted, changedAt } with the time of the last change',
    },
    socialProfiles: { kind: 'json', description: 'profile URL or handle per network, e.g. { "linkedin": "https://www.linkedin.com/in/ada" }' },
    source: { kind: 'enum', values: commonV1.LeadSource, filter: true, description: 'lead source' },
    referredById: { kind: 'ref', to: 'Contact', filter: true, description: 'the contact who referred this one' },
    referralSource: { kind: 'text', max: 200 },
    lastContactedAt: { kind: 'timestamp' },
    lastActivityAt: { kind: 'timestamp' },
    tags: { kind: 'tags', description: 'ids of the organization’s tags' },
    customFields: { kind: 'json', description: 'values of the organization’s custom fields for contacts, by key (see /api/v1/custom-fields)' },
    ownerId: { kind: 'owner', filter: true },
    mergedIntoId: {
      kind: 'text',
      max: 36,
      description:
        'output only (ignored on input): the contact this one was merged into; set on merged contacts only, which are no longer served (see /api/v1/merges)',
    },
  },
});
