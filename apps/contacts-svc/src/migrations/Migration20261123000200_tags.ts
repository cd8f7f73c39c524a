import { Migration } from '@mikro-orm/migrations';

/**
 * Tags and tag rules (records kit names, see record-entity.ts). A tag's name is unique among the
 * organization's live tags regardless of case: the unique index is on `lower(name)` (an expression
 * index, which the schema test compares by name only; tag.int.spec.ts checks its definition).
 * Rules are read by organization and object when a company or contact is written
 * (`tag_rule_object_idx`), and by tag when a tag is deleted (`tag_rule_tag_id_idx`).
 */
export class Migration20261123000200Tags extends Migration {
  override name = 'Migration20261123000200_tags';

  override up(): void {
    this.addSql(`create table tag (
      id uuid primary key,
      organization_id uuid not null,
      name text not null,
      color text null,
      description text null,
      active boolean not null default true,
      created_at timestamptz not null,
      updated_at timestamptz not null,
      created_by text not null,
      version integer not null default 1,
      deleted_at timestamptz null
    )`);
    this.addSql('create unique index tag_name_uq on tag (organization_id, lower(name)) where deleted_at is null and name is not null');
    this.addSql('create index tag_org_idx on tag (organization_id, id) where deleted_at is null');
    // the list's `q` over the name (records kit search.ts; crm_fold from platformSearchMigration)
    this.addSql(`create index tag_search_idx on tag using gin (crm_fold(coalesce(name, '')) public.gin_trgm_ops) where deleted_at is null`);
    this.addSql(`create table tag_rule (
      id uuid primary key,
      organization_id uuid not null,
      object text null,
      field text null,
      value text not null,
      tag_id uuid null constraint tag_rule_tag_id_fkey references tag (id),
      active boolean not null default true,
      created_at timestamptz not null,
      updated_at timestamptz not null,
      created_by text not null,
      version integer not null default 1
    )`);
    this.addSql('create index tag_rule_object_idx on tag_rule (organization_id, object, id)');
    this.addSql('create index tag_rule_tag_id_idx on tag_rule (organization_id, tag_id, id)');
    this.addSql('create index tag_rule_tag_id_ref_idx on tag_rule (tag_id)');
    this.addSql('create index tag_rule_org_idx on tag_rule (organization_id, id)');
  }

  override down(): void {
    this.addSql('drop table tag_rule');
    this.addSql('drop table tag');
  }
}
