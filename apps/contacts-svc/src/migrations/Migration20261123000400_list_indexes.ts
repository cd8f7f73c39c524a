import { Migration } from '@mikro-orm/migrations';

/**
 * Indexes of the company and contact lists (issue 7 "Search, filters, sorting"): one per sort
 * (organization first, the sort columns, id — the keyset order; a nullable timestamp as
 * `coalesce(…, '-infinity')`, the reader's sort expression), the owner filter of companies and the
 * head-office city (case-insensitive) and country filters.
 */
export class Migration20261123000400ListIndexes extends Migration {
  override name = 'Migration20261123000400_list_indexes';

  override up(): void {
    const live = 'where deleted_at is null';
    const sorts: [string, string, string][] = [
      ['company', 'name', 'name'],
      ['company', 'created_at', 'created_at'],
      ['company', 'updated_at', 'updated_at'],
      ['company', 'last_contacted_at', `coalesce(last_contacted_at, '-infinity'::timestamptz)`],
      ['contact', 'name', 'last_name, first_name'],
      ['contact', 'created_at', 'created_at'],
      ['contact', 'updated_at', 'updated_at'],
      ['contact', 'last_contacted_at', `coalesce(last_contacted_at, '-infinity'::timestamptz)`],
    ];
    for (const [table, name, columns] of sorts) this.addSql(`create index ${table}_${name}_sort_idx on ${table} (organization_id, ${columns}, id) ${live}`);
    this.addSql(`create index company_owner_id_idx on company (organization_id, owner_id, id) ${live}`);
    this.addSql(`create index company_address_city_idx on company (organization_id, lower(address_city), id) ${live}`);
    this.addSql(`create index company_address_country_idx on company (organization_id, address_country, id) ${live}`);
  }
}
