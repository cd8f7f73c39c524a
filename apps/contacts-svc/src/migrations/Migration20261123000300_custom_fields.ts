import { Migration } from '@mikro-orm/migrations';

/**
 * Custom field definitions (records kit table of `customFieldRecord`). A key is unique per
 * organization and object among live definitions (`custom_field_key_uq`); lists are
 * organization-first and keyset-paged by id, optionally filtered by object or searched (`q`).
 */
export class Migration20261123000300CustomFields extends Migration {
  override name = 'Migration20261123000300_custom_fields';

  override up(): void {
    this.addSql(`create table custom_field (
      id uuid primary key,
      organization_id uuid not null,
      object text null,
      key text not null,
      label text not null,
      type text null,
      options text[] not null default '{}',
      required boolean not null default false,
      default_value jsonb null,
      description text null,
      active boolean not null default true,
      created_at timestamptz not null,
      updated_at timestamptz not null,
      created_by text not null,
      version integer not null default 1,
      deleted_at timestamptz null
    )`);
    this.addSql('create index custom_field_org_idx on custom_field (organization_id, id) where deleted_at is null');
    this.addSql('create index custom_field_object_idx on custom_field (organization_id, object, id) where deleted_at is null');
    this.addSql('create unique index custom_field_key_uq on custom_field (organization_id, object, key) where deleted_at is null');
    // the list's `q` over key and label (records kit search; crm_fold from the platform search migration)
    this.addSql(
      `create index custom_field_search_idx on custom_field using gin (crm_fold(coalesce(key, '') || ' ' || coalesce(label, '')) public.gin_trgm_ops) where deleted_at is null`,
    );
  }

  override down(): void {
    this.addSql('drop table custom_field');
  }
}
