import { Migration } from '@mikro-orm/migrations';

/**
 * Companies and contacts. Every list query is `organization_id`-first and keyset-paged by id, so
 * the partial indexes below serve them at millions of rows; uniqueness of domain / email holds
 * among live (not soft-deleted) records only.
 */
export class Migration20261121000100CompaniesContacts extends Migration {
  override name = 'Migration20261121000100_companies_contacts';

  override up(): void {
    this.addSql(`create table company (
      id uuid primary key,
      organization_id uuid not null,
      name text not null,
      domain text null,
      industry text null,
      parent_company_id uuid null references company (id),
      employees integer null check (employees >= 0),
      annual_revenue_amount numeric(19,4) null,
      annual_revenue_currency varchar(3) null,
      address_street text null,
      address_city text null,
      address_region text null,
      address_postal_code text null,
      address_country text null,
      owner_id text not null,
      created_at timestamptz not null,
      updated_at timestamptz not null,
      created_by text not null,
      version integer not null default 1,
      deleted_at timestamptz null
    )`);
    this.addSql('create index company_org_idx on company (organization_id, id) where deleted_at is null');
    this.addSql('create index company_parent_idx on company (organization_id, parent_company_id, id) where deleted_at is null');
    this.addSql('create index company_industry_idx on company (organization_id, industry, id) where deleted_at is null');
    this.addSql('create unique index company_domain_uq on company (organization_id, domain) where deleted_at is null and domain is not null');
    this.addSql(`create table contact (
      id uuid primary key,
      organization_id uuid not null,
      first_name text not null,
      last_name text not null,
      email text null,
      phone text null,
      job_title text null,
      company_id uuid null references company (id),
      owner_id text not null,
      created_at timestamptz not null,
      updated_at timestamptz not null,
      created_by text not null,
      version integer not null default 1,
      deleted_at timestamptz null
    )`);
    this.addSql('create index contact_org_idx on contact (organization_id, id) where deleted_at is null');
    this.addSql('create index contact_company_idx on contact (organization_id, company_id, id) where deleted_at is null');
    this.addSql('create unique index contact_email_uq on contact (organization_id, email) where deleted_at is null and email is not null');
  }

  override down(): void {
    this.addSql('drop table contact');
    this.addSql('drop table company');
  }
}
