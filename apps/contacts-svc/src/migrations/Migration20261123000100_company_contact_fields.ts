import { Migration } from '@mikro-orm/migrations';

/**
 * Issue 7: the complete company and contact (fields as declared in company.record.ts and
 * contact.record.ts), their search indexes and the one-primary-contact rule.
 *
 * - Search: `<table>_search_idx`, GIN trigram over the folded search fields (platform search.ts;
 *   the expression must stay identical to `searchExpression` for the planner to use it).
 * - Tags and custom fields: GIN indexes for containment (`tags @> …`, `custom_fields @> …`), the
 *   shapes tag filters, segments and `cf.<key>` filters query with.
 * - `contact_primary_uq`: at most one live primary contact per company, enforced by the database.
 */
export class Migration20261123000100CompanyContactFields extends Migration {
  override name = 'Migration20261123000100_company_contact_fields';

  override up(): void {
    this.addSql(`alter table company
      add column legal_name text null,
      add column website text null,
      add column phone text null,
      add column phone_original text null,
      add column email text null,
      add column account_type text null,
      add column status text null,
      add column priority text null,
      add column rating text null,
      add column source text null,
      add column registration_number text null,
      add column tax_id text null,
      add column business_type text null,
      add column founded_year integer null,
      add column credit_limit_amount numeric(19,4) null,
      add column credit_limit_currency varchar(3) null,
      add column payment_terms_days integer null,
      add column description text null,
      add column billing_address_street text null,
      add column billing_address_city text null,
      add column billing_address_region text null,
      add column billing_address_postal_code text null,
      add column billing_address_country text null,
      add column shipping_address_street text null,
      add column shipping_address_city text null,
      add column shipping_address_region text null,
      add column shipping_address_postal_code text null,
      add column shipping_address_country text null,
      add column last_contacted_at timestamptz null,
      add column last_activity_at timestamptz null,
      add column tags uuid[] not null default '{}',
      add column custom_fields jsonb null,
      add constraint company_founded_year_check check (founded_year >= 1000 and founded_year <= 2200),
      add constraint company_payment_terms_days_check check (payment_terms_days >= 0 and payment_terms_days <= 3650)`);
    for (const column of ['account_type', 'status', 'priority', 'rating', 'source']) {
      this.addSql(`create index company_${column}_idx on company (organization_id, ${column}, id) where deleted_at is null`);
    }
    this.addSql(`create index company_search_idx on company using gin (
      crm_fold(coalesce(name, '') || ' ' || coalesce(domain, '') || ' ' || coalesce(website, '') || ' ' || coalesce(phone, '') || ' ' || coalesce(email, '')) public.gin_trgm_ops
    ) where deleted_at is null`);
    this.addSql('create index company_tags_idx on company using gin (tags) where deleted_at is null');
    this.addSql('create index company_custom_fields_idx on company using gin (custom_fields jsonb_path_ops) where deleted_at is null');

    this.addSql(`alter table contact
      add column phone_original text null,
      add column mobile text null,
      add column mobile_original text null,
      add column department text null,
      add column is_primary boolean not null default false,
      add column is_decision_maker boolean not null default false,
      add column do_not_call boolean not null default false,
      add column email_opt_out boolean not null default false,
      add column preferred_contact_method text null,
      add column preferred_language text null,
      add column timezone text null,
      add column date_of_birth date null,
      add column gender text null,
      add column nationality text null,
      add column marketing_preferences jsonb null,
      add column social_profiles jsonb null,
      add column source text null,
      add column referred_by_id uuid null,
      add column referral_source text null,
      add column last_contacted_at timestamptz null,
      add column last_activity_at timestamptz null,
      add column tags uuid[] not null default '{}',
      add column custom_fields jsonb null,
      add constraint contact_referred_by_id_fkey foreign key (referred_by_id) references contact (id) on update no action on delete no action`);
    this.addSql('create index contact_referred_by_id_ref_idx on contact (referred_by_id)');
    for (const column of ['preferred_contact_method', 'source', 'referred_by_id', 'owner_id']) {
      this.addSql(`create index contact_${column}_idx on contact (organization_id, ${column}, id) where deleted_at is null`);
    }
    this.addSql(`create index contact_search_idx on contact using gin (
      crm_fold(coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '') || ' ' || coalesce(mobile, '')) public.gin_trgm_ops
    ) where deleted_at is null`);
    this.addSql('create index contact_tags_idx on contact using gin (tags) where deleted_at is null');
    this.addSql('create index contact_custom_fields_idx on contact using gin (custom_fields jsonb_path_ops) where deleted_at is null');
    this.addSql(
      'create unique index contact_primary_uq on contact (organization_id, company_id) where deleted_at is null and is_primary and company_id is not null',
    );
  }
}
