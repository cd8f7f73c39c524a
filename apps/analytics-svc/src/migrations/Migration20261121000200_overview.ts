import { Migration } from '@mikro-orm/migrations';

/** Overview projection tables; keyed by (organization, record) so upserts are idempotent. */
export class Migration20261121000200Overview extends Migration {
  override name = 'Migration20261121000200_overview';

  override up(): void {
    this.addSql(`create table company_projection (
      organization_id uuid not null,
      company_id uuid not null,
      industry text not null default '',
      updated_at timestamptz not null,
      primary key (organization_id, company_id)
    )`);
    this.addSql('create index company_projection_industry_idx on company_projection (organization_id, industry)');
    this.addSql(`create table contact_projection (
      organization_id uuid not null,
      contact_id uuid not null,
      updated_at timestamptz not null,
      primary key (organization_id, contact_id)
    )`);
  }

  override down(): void {
    this.addSql('drop table contact_projection');
    this.addSql('drop table company_projection');
  }
}
