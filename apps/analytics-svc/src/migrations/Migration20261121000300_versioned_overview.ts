import { Migration } from '@mikro-orm/migrations';

/**
 * Versioned overview projections and their counters. Each projected row keeps the aggregate
 * version it reflects (`version`; 0 for rows projected before versions were kept) and whether the
 * aggregate was deleted (`deleted`: a tombstone, so an older created/updated event arriving after
 * the delete cannot bring it back). The overview reads maintained counters instead of recounting:
 * companies per (organization, industry) and contacts per organization, filled here from the live
 * rows so far. The industry index served the recount and goes.
 */
export class Migration20261121000300VersionedOverview extends Migration {
  override name = 'Migration20261121000300_versioned_overview';

  override up(): void {
    this.addSql('alter table company_projection add column version bigint not null default 0, add column deleted boolean not null default false');
    this.addSql('alter table contact_projection add column version bigint not null default 0, add column deleted boolean not null default false');
    this.addSql('drop index company_projection_industry_idx');
    this.addSql(`create table overview_industry_count (
      organization_id uuid not null,
      industry text not null,
      company_count bigint not null default 0,
      primary key (organization_id, industry)
    )`);
    this.addSql(`create table overview_contact_count (
      organization_id uuid not null primary key,
      contact_count bigint not null default 0
    )`);
    this.addSql(`insert into overview_industry_count (organization_id, industry, company_count)
      select organization_id, industry, count(*) from company_projection group by organization_id, industry`);
    this.addSql(`insert into overview_contact_count (organization_id, contact_count)
      select organization_id, count(*) from contact_projection group by organization_id`);
  }

  override down(): void {
    this.addSql('drop table overview_contact_count');
    this.addSql('drop table overview_industry_count');
    this.addSql('delete from contact_projection where deleted');
    this.addSql('delete from company_projection where deleted');
    this.addSql('create index company_projection_industry_idx on company_projection (organization_id, industry)');
    this.addSql('alter table contact_projection drop column deleted, drop column version');
    this.addSql('alter table company_projection drop column deleted, drop column version');
  }
}
