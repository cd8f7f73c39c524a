import { Migration } from '@mikro-orm/migrations';

/**
 * Each foreign key gets an index of its own (column first, every row): the existing indexes are
 * partial (live rows) and organization-first, so Postgres could not use them to check the
 * referencing rows when a company row is deleted — a bulk delete of 100k companies scanned
 * `contact` and `company` once per row.
 */
export class Migration20261122000200ForeignKeyIndexes extends Migration {
  override name = 'Migration20261122000200_foreign_key_indexes';

  override up(): void {
    this.addSql('create index company_parent_company_id_ref_idx on company (parent_company_id)');
    this.addSql('create index contact_company_id_ref_idx on contact (company_id)');
  }

  override down(): void {
    this.addSql('drop index contact_company_id_ref_idx');
    this.addSql('drop index company_parent_company_id_ref_idx');
  }
}
