import { platformMessagingMigration } from '@crm/platform';
import { Migration20261121000200Overview } from './Migration20261121000200_overview.ts';
import { Migration20261121000300VersionedOverview } from './Migration20261121000300_versioned_overview.ts';

/** Committed migrations of schema `analytics`, in order. */
export const migrations = [
  platformMessagingMigration,
  { name: 'Migration20261121000200_overview', class: Migration20261121000200Overview },
  { name: 'Migration20261121000300_versioned_overview', class: Migration20261121000300VersionedOverview },
];
