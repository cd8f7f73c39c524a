import { platformIdempotencyMigration, platformMessagingMigration } from '@crm/platform';
import { Migration20261121000100CompaniesContacts } from './Migration20261121000100_companies_contacts.ts';
import { Migration20261121000400RecordsKitNames } from './Migration20261121000400_records_kit_names.ts';
import { Migration20261122000200ForeignKeyIndexes } from './Migration20261122000200_foreign_key_indexes.ts';

/** Committed migrations of schema `contacts`, in order (explicit list: no folder scanning). */
export const migrations = [
  platformMessagingMigration,
  { name: 'Migration20261121000100_companies_contacts', class: Migration20261121000100CompaniesContacts },
  { name: 'Migration20261121000400_records_kit_names', class: Migration20261121000400RecordsKitNames },
  platformIdempotencyMigration,
  { name: 'Migration20261122000200_foreign_key_indexes', class: Migration20261122000200ForeignKeyIndexes },
];
