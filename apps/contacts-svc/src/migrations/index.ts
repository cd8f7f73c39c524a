import { platformIdempotencyMigration, platformMessagingMigration, platformSearchMigration } from '@crm/platform';
import { Migration20261121000100CompaniesContacts } from './Migration20261121000100_companies_contacts.ts';
import { Migration20261121000400RecordsKitNames } from './Migration20261121000400_records_kit_names.ts';
import { Migration20261122000200ForeignKeyIndexes } from './Migration20261122000200_foreign_key_indexes.ts';
import { Migration20261123000100CompanyContactFields } from './Migration20261123000100_company_contact_fields.ts';
import { Migration20261123000200Tags } from './Migration20261123000200_tags.ts';
import { Migration20261123000400ListIndexes } from './Migration20261123000400_list_indexes.ts';
import { Migration20261123000300CustomFields } from './Migration20261123000300_custom_fields.ts';
import { Migration20261123000500Segments } from './Migration20261123000500_segments.ts';
import { Migration20261124000100Documents } from './Migration20261124000100_documents.ts';
import { Migration20261124000200DuplicatesMerge } from './Migration20261124000200_duplicates_merge.ts';

/** Committed migrations of schema `contacts`, in order (explicit list: no folder scanning). */
export const migrations = [
  platformMessagingMigration,
  { name: 'Migration20261121000100_companies_contacts', class: Migration20261121000100CompaniesContacts },
  { name: 'Migration20261121000400_records_kit_names', class: Migration20261121000400RecordsKitNames },
  platformIdempotencyMigration,
  { name: 'Migration20261122000200_foreign_key_indexes', class: Migration20261122000200ForeignKeyIndexes },
  platformSearchMigration,
  { name: 'Migration20261123000100_company_contact_fields', class: Migration20261123000100CompanyContactFields },
  { name: 'Migration20261123000200_tags', class: Migration20261123000200Tags },
  { name: 'Migration20261123000300_custom_fields', class: Migration20261123000300CustomFields },
  { name: 'Migration20261123000400_list_indexes', class: Migration20261123000400ListIndexes },
  { name: 'Migration20261123000500_segments', class: Migration20261123000500Segments },
  { name: 'Migration20261124000100_documents', class: Migration20261124000100Documents },
  { name: 'Migration20261124000200_duplicates_merge', class: Migration20261124000200DuplicatesMerge },
];
