import * as contactV1 from '../gen/crm/contacts/v1/contact.ts';
import * as events from '../gen/crm/events/v1/contacts.ts';
import { defineRecord } from './record.ts';

/** Contacts (people) of contacts-svc: table `contacts.contact`, REST `/api/v1/contacts`. */
export const contactRecord = defineRecord<contactV1.Contact>()({
  name: 'contact',
  plural: 'contacts',
  domain: 'contacts',
  softDelete: true,
  service: contactV1.ContactServiceService,
  events: { created: events.ContactCreated, updated: events.ContactUpdated, deleted: events.ContactDeleted },
  fields: {
    firstName: { kind: 'text', max: 100, blank: '', search: true },
    lastName: { kind: 'text', max: 100, blank: '', search: true },
    email: { kind: 'email', search: true, unique: 'CONTACT_EMAIL_TAKEN' },
    phone: { kind: 'text', max: 30, format: 'phone' },
    jobTitle: { kind: 'text', max: 200 },
    companyId: { kind: 'ref', to: 'Company', filter: true },
    ownerId: { kind: 'owner' },
  },
});
