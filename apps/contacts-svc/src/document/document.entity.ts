import { defineEntity, p } from '@mikro-orm/core';
import { tenantFilter } from '@crm/platform';

/**
 * `contacts.document`: a file attached to exactly one company or contact of the same organization
 * (`document_parent_check`). Metadata only — the content is a blob of the configured
 * {@link ../storage/blob-store.ts BlobStore} under `blob_key`. `size_bytes`, `sha256` and
 * `content_type` are computed from the bytes by contacts-svc; `file_name` is the uploaded file's
 * name (the download's `Content-Disposition`). Deleted for good (with its blob), no soft delete.
 * Indexes: a record's documents (`document_company_idx`, `document_contact_idx`), the
 * organization's list (`document_org_idx`), the organization's expiring documents
 * (`document_expiry_idx`) and the expiry check across organizations (`document_expiry_due_idx`:
 * only documents whose last notice for their current `expires_on` is not out yet —
 * `expiry_notices_done_for`, set by the check with the 0-day notice — so expired documents are
 * not read again by every check).
 */
export const DocumentEntity = defineEntity({
  name: 'Document',
  tableName: 'document',
  filters: { ...tenantFilter },
  indexes: [
    { name: 'document_org_idx', properties: ['organizationId', 'id'] },
    { name: 'document_company_idx', properties: ['organizationId', 'companyId', 'id'], where: 'company_id is not null' },
    { name: 'document_contact_idx', properties: ['organizationId', 'contactId', 'id'], where: 'contact_id is not null' },
    { name: 'document_expiry_idx', properties: ['organizationId', 'expiresOn', 'id'], where: 'expires_on is not null' },
    {
      name: 'document_expiry_due_idx',
      properties: ['expiresOn', 'id'],
      where: 'expires_on is not null and expiry_notices_done_for is distinct from expires_on',
    },
  ],
  checks: [
    { name: 'document_parent_check', expression: '(company_id is null) <> (contact_id is null)' },
    { name: 'document_size_bytes_check', expression: 'size_bytes >= 0' },
  ],
  properties: {
    id: p.uuid().primary(),
    organizationId: p.uuid(),
    companyId: p.uuid().nullable(),
    contactId: p.uuid().nullable(),
    name: p.text(),
    documentType: p.text(),
    expiresOn: p.date().nullable(),
    visibility: p.text(),
    fileName: p.text(),
    contentType: p.text(),
    sizeBytes: p.bigint('number'),
    sha256: p.text(),
    blobKey: p.text(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    createdBy: p.text(),
    version: p.integer().version(),
    /** The `expires_on` whose 0-day notice was emitted (the check skips the document while it is unchanged); null before. */
    expiryNoticesDoneFor: p.date().nullable(),
  },
});

/**
 * `contacts.document_expiry_notice`: that `crm.contacts.document.expiring` was emitted for a
 * document, threshold (days before `expires_on`: 30, 7, 0) and expiry date. The primary key makes
 * the emission happen once however many replicas check at once (insert … on conflict do nothing,
 * in the transaction of the outbox event); a changed `expires_on` is a new date, so its
 * thresholds fire again. Deleted with the document.
 */
export const DocumentExpiryNoticeEntity = defineEntity({
  name: 'DocumentExpiryNotice',
  tableName: 'document_expiry_notice',
  properties: {
    documentId: p.uuid().primary(),
    thresholdDays: p.integer().primary(),
    expiresOn: p.date().primary(),
    organizationId: p.uuid(),
    notifiedAt: p.datetime(),
  },
});
