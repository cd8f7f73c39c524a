import { contactRecord } from '@crm/contracts';
import { RecordService, recordEntity, type Orm } from '@crm/platform';
import { assertHasAName } from './contact.rules.ts';

/** `contacts.contact`, derived from {@link contactRecord}. */
export const ContactEntity = recordEntity(contactRecord);

/** Contacts: the kit's record service plus the one rule of its own — a contact has a name. */
export function contactService(orm: Orm): RecordService<typeof contactRecord.fields> {
  return new RecordService(orm, contactRecord, ContactEntity, {
    hooks: {
      beforeWrite: ({ values, changed }) => {
        if (changed.has('firstName') || changed.has('lastName')) assertHasAName(values.firstName, values.lastName);
      },
    },
  });
}
