import { Migration } from '@mikro-orm/migrations';

/**
 * Segments (records kit names, see record-entity.ts) and the explicit members of static segments.
 * Dynamic segments keep their criteria as JSON and are evaluated against `company`/`contact` on
 * read (segment.criteria.ts); `member_count` is stored for static segments only. A membership row
 * names a company or a contact (the segment's object), hence no foreign key on `record_id`;
 * `segment_member_record_idx` finds a record's memberships.
 */
export class Migration20261123000500Segments extends Migration {
  override name = 'Migration20261123000500_segments';

  override up(): void {
    this.addSql(`create table segment (
      id uuid primary key,
      organization_id uuid not null,
      name text not null,
      description text null,
      object text null,
      kind text null,
      criteria jsonb null,
      member_count integer null constraint segment_member_count_check check (member_count >= 0),
      created_at timestamptz not null,
      updated_at timestamptz not null,
      created_by text not null,
      version integer not null default 1,
      deleted_at timestamptz null
    )`);
    this.addSql('create index segment_org_idx on segment (organization_id, id) where deleted_at is null');
    this.addSql('create index segment_object_idx on segment (organization_id, object, id) where deleted_at is null');
    this.addSql('create index segment_kind_idx on segment (organization_id, kind, id) where deleted_at is null');
    // the list's `q` over the name (records kit search.ts; crm_fold from platformSearchMigration)
    this.addSql(`create index segment_search_idx on segment using gin (crm_fold(coalesce(name, '')) public.gin_trgm_ops) where deleted_at is null`);
    this.addSql(`create table segment_member (
      segment_id uuid not null,
      record_id uuid not null,
      organization_id uuid not null,
      created_at timestamptz not null,
      created_by text not null,
      primary key (segment_id, record_id)
    )`);
    this.addSql('create index segment_member_record_idx on segment_member (record_id)');
  }

  override down(): void {
    this.addSql('drop table segment_member');
    this.addSql('drop table segment');
  }
}
