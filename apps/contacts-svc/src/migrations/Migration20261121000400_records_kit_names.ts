import { Migration } from '@mikro-orm/migrations';

/**
 * Filter indexes take the records kit's names (`<table>_<column>_idx`, derived from the field
 * table), so entities and migrations agree by construction. Definitions are unchanged.
 */
export class Migration20261121000400RecordsKitNames extends Migration {
  override name = 'Migration20261121000400_records_kit_names';

  override up(): void {
    this.addSql('alter index company_parent_idx rename to company_parent_company_id_idx');
    this.addSql('alter index contact_company_idx rename to contact_company_id_idx');
  }

  override down(): void {
    this.addSql('alter index company_parent_company_id_idx rename to company_parent_idx');
    this.addSql('alter index contact_company_id_idx rename to contact_company_idx');
  }
}
