import { contactsEventsV1 } from '@crm/contracts';
import { domainEvent, type PendingEvent } from '@crm/platform';
import type { Contact } from './contact.entity.ts';
import { toContactMessage } from './contact.mapper.ts';
import { CONTACT_FIELD_PROTO_NAMES, type ContactField } from './contact.rules.ts';

const { ContactCreated, ContactUpdated, ContactDeleted } = contactsEventsV1;

/** `crm.contacts.contact.created`. */
export function contactCreated(contact: Contact): PendingEvent {
  return domainEvent('crm.contacts.contact.created', 'crm.events.v1.ContactCreated', ContactCreated, contact.id, { contact: toContactMessage(contact) });
}

/** `crm.contacts.contact.updated` with the changed fields (proto names). */
export function contactUpdated(contact: Contact, changed: readonly ContactField[]): PendingEvent {
  return domainEvent('crm.contacts.contact.updated', 'crm.events.v1.ContactUpdated', ContactUpdated, contact.id, {
    contact: toContactMessage(contact),
    changedFields: changed.map((f) => CONTACT_FIELD_PROTO_NAMES[f]),
    changes: [],
  });
}

/** `crm.contacts.contact.deleted`. */
export function contactDeleted(contactId: string): PendingEvent {
  return domainEvent('crm.contacts.contact.deleted', 'crm.events.v1.ContactDeleted', ContactDeleted, contactId, { contactId });
}
