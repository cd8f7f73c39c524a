import { platformMessagingMigration } from '@crm/platform';
import { Migration20261121000100CompaniesContacts } from './Migration20261121000100_companies_contacts.ts';

/** Committed migrations of schema `contacts`, in order (explicit list: no folder scanning). */
export const migrations = [platformMessagingMigration, { name: 'Migration20261121000100_companies_contacts', class: Migration20261121000100CompaniesContacts }];
