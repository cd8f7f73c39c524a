import { Migration } from '@mikro-orm/migrations';

/**
 * Documents (issue 8): `document` (metadata; exactly one parent, a company or a contact of the
 * organization — no foreign key, as parents are soft-deleted and restored, the service checks the
 * reference; `expiry_notices_done_for` marks documents whose last expiry notice is out, so the
 * check's index `document_expiry_due_idx` holds only the others), `document_expiry_notice` (one
 * row per document, threshold and expiry date: the expiry check's exactly-once guard), `blob`
 * (every stored object of either blob store, from before its first byte until removed; those
 * belonging to nobody — incomplete, pending, released — are found by `blob_unclaimed_idx`) and
 * the Postgres blob store's `blob_chunk` (content in ≈ 256 KiB rows). See document.entity.ts,
 * storage/blob-store.ts and storage/postgres-blob-store.ts.
 */
export class Migration20261124000100Documents extends Migration {
  override name = 'Migration20261124000100_documents';

  override up(): void {
    this.addSql(`create table document (
      id uuid primary key,
      organization_id uuid not null,
      company_id uuid null,
      contact_id uuid null,
      name text not null,
      document_type text not null,
      expires_on date null,
      visibility text not null,
      file_name text not null,
      content_type text not null,
      size_bytes bigint not null,
      sha256 text not null,
      blob_key text not null,
      created_at timestamptz not null,
      updated_at timestamptz not null,
      created_by text not null,
      version integer not null default 1,
      expiry_notices_done_for date null,
      constraint document_parent_check check ((company_id is null) <> (contact_id is null)),
      constraint document_size_bytes_check check (size_bytes >= 0)
    )`);
    this.addSql('create index document_org_idx on document (organization_id, id)');
    this.addSql('create index document_company_idx on document (organization_id, company_id, id) where company_id is not null');
    this.addSql('create index document_contact_idx on document (organization_id, contact_id, id) where contact_id is not null');
    this.addSql('create index document_expiry_idx on document (organization_id, expires_on, id) where expires_on is not null');
    this.addSql(
      'create index document_expiry_due_idx on document (expires_on, id) where expires_on is not null and expiry_notices_done_for is distinct from expires_on',
    );
    this.addSql(`create table document_expiry_notice (
      document_id uuid not null,
      threshold_days integer not null,
      expires_on date not null,
      organization_id uuid not null,
      notified_at timestamptz not null,
      primary key (document_id, threshold_days, expires_on)
    )`);
    this.addSql(`create table blob (
      key uuid primary key,
      organization_id uuid not null,
      store text not null,
      complete boolean not null,
      size_bytes bigint null,
      sha256 text null,
      chunk_count integer null,
      created_at timestamptz not null,
      claimed_at timestamptz null,
      constraint blob_store_check check (store in ('postgres', 's3'))
    )`);
    this.addSql('create index blob_unclaimed_idx on blob (created_at) where claimed_at is null');
    this.addSql(`create table blob_chunk (
      blob_key uuid not null,
      seq integer not null,
      organization_id uuid not null,
      data bytea not null,
      primary key (blob_key, seq)
    )`);
  }

  override down(): void {
    this.addSql('drop table blob_chunk');
    this.addSql('drop table blob');
    this.addSql('drop table document_expiry_notice');
    this.addSql('drop table document');
  }
}
