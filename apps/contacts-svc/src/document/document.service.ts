import { documentsEventsV1, documentV1 } from '@crm/contracts';
import {
  decodeListCursor,
  domainEvent,
  DomainError,
  encodeListCursor,
  hasAnyRole,
  invalidCursor,
  isUuid,
  keysetPageById,
  newId,
  notFound,
  pageSize,
  recordEvents,
  requestEntityManager,
  requireContext,
  versionMismatch,
  type EntityManager,
  type FieldViolation,
  type Logger,
  type Orm,
  type PendingEvent,
  type RequestContext,
} from '@crm/platform';
import { claimBlob, releaseBlob, type BlobStore } from '../storage/blob-store.ts';
import {
  canChange,
  canSee,
  checkName,
  DOCUMENT_MAX_BYTES,
  DOCUMENT_TYPES,
  EXPIRING_WITHIN_MAX_DAYS,
  isCalendarDate,
  safeFileName,
  seesEveryPrivateDocument,
  sniffContentType,
  SNIFF_BYTES,
  UPLOAD_ROLES,
  Utf8Check,
  VISIBILITIES,
  type DocumentMetadata,
  type DocumentTypeName,
  type VisibilityName,
} from './document.rules.ts';

/** A stored document (table `contacts.document`), as the service reads it. */
export interface DocumentRow {
  id: string;
  organizationId: string;
  companyId: string | null;
  contactId: string | null;
  name: string;
  documentType: DocumentTypeName;
  /** `YYYY-MM-DD` or null. */
  expiresOn: string | null;
  visibility: VisibilityName;
  fileName: string;
  contentType: string;
  sizeBytes: number;
  sha256: string;
  blobKey: string;
  createdAt: Date;
  updatedAt: Date;
  createdBy: string;
  version: number;
}

/** The record a document belongs to. */
export type DocumentParent = { kind: 'company'; id: string } | { kind: 'contact'; id: string };

/** A list request: paging, an optional parent, and optionally only documents expiring within so many days (then by expiresOn, id). */
export interface DocumentListQuery {
  pageSize?: number | undefined;
  cursor?: string | undefined;
  parent?: DocumentParent | undefined;
  expiringWithinDays?: number | undefined;
  /** "Today" (its UTC date) of the expiring list; default the database's clock. */
  now?: Date | undefined;
}

/** The metadata an update writes: only the fields present. */
export type DocumentChanges = Partial<DocumentMetadata>;

/** Source of the outbox events (CloudEvents `ce-source`). */
export const EVENT_SOURCE = '/crm/contacts-svc';

/** Columns of {@link DocumentRow} for statements over `contacts.document d` (dates and bigints as text). */
export const DOCUMENT_COLUMNS = `d.id, d.organization_id, d.company_id, d.contact_id, d.name, d.document_type, d.expires_on::text as expires_on, d.visibility,
  d.file_name, d.content_type, d.size_bytes::text as size_bytes, d.sha256, d.blob_key, d.created_at, d.updated_at, d.created_by, d.version`;

/** The document's parent is a live (not soft-deleted) record of its organization. */
export const LIVE_PARENT = `(exists (select 1 from contacts.company c where c.id = d.company_id and c.organization_id = d.organization_id and c.deleted_at is null)
  or exists (select 1 from contacts.contact k where k.id = d.contact_id and k.organization_id = d.organization_id and k.deleted_at is null))`;

const TABLES = { company: 'contacts.company', contact: 'contacts.contact' } as const;

/**
 * Documents attached to companies and contacts: upload (streamed into the {@link BlobStore}),
 * read, list, change metadata, delete, download. Every statement names the caller's
 * organization; a document the caller may not see (another organization's, a private one of
 * somebody else, one whose company or contact is deleted) is NOT_FOUND, never 403. Writes store
 * their event in the outbox in the same transaction: `crm.contacts.document.uploaded`,
 * `…updated` (changed fields with old and new values), `…deleted`.
 *
 * A soft-deleted company or contact hides its documents (they come back when it is restored,
 * e.g. by undoing a merge); their content stays stored until the document itself is deleted.
 */
export class DocumentService {
  readonly #orm: Orm;
  readonly #store: BlobStore;
  readonly #logger: Logger | undefined;

  constructor(orm: Orm, store: BlobStore, logger?: Logger) {
    this.#orm = orm;
    this.#store = store;
    this.#logger = logger;
  }

  /**
   * Stores a document from an upload stream: `header` first, then `content`. Checks before
   * reading any content: the role (PERMISSION_DENIED for crm-viewer), the metadata (INVALID_ARGUMENT
   * naming `companyId`, `name`, `documentType`, `expiresOn`, `visibility`), the parent (NOT_FOUND
   * `COMPANY_NOT_FOUND` / `CONTACT_NOT_FOUND` unless a live record of the organization). Then
   * streams the content into the blob store as a *pending* blob (INVALID_ARGUMENT
   * `PAYLOAD_TOO_LARGE` past 25 MiB, `EMPTY_FILE` for none), sniffs its type and inserts the row,
   * the blob's claim ({@link claimBlob}) and the `uploaded` event in one transaction (the parent
   * checked again, held `for share` so it cannot be deleted meanwhile). On any failure nothing
   * stays stored: no row, no event, and the blob is discarded — unless its claim committed after
   * all (a lost COMMIT reply: {@link BlobStore.discard} waits for the claim's row lock and keeps a
   * claimed blob). A blob left pending by a crash, or whose discard failed, is removed by the
   * blob sweep after `STALE_UPLOAD_MS`.
   */
  async upload(header: documentV1.UploadDocumentHeader, content: AsyncIterable<Buffer>): Promise<DocumentRow> {
    const ctx = requireContext();
    if (!hasAnyRole(ctx, ...UPLOAD_ROLES)) throw new DomainError('permission_denied', 'NOT_ALLOWED', 'read-only role');
    const parent = uploadParent(header);
    const fileName = safeFileName(header.fileName);
    const metadata = checkMetadata(
      {
        name: header.name.trim() === '' ? fileName : header.name,
        documentType: header.documentType === 0 ? 'other' : fromProtoType(header.documentType),
        expiresOn: header.expiresOn === '' ? null : header.expiresOn,
        visibility: header.visibility === 0 ? 'public' : fromProtoVisibility(header.visibility),
      },
      ['name', 'documentType', 'expiresOn', 'visibility'],
    ) as DocumentMetadata;
    await this.#requireParent(requestEntityManager(this.#orm), ctx.organizationId, parent, false);

    const utf8 = new Utf8Check();
    const head: Buffer[] = [];
    let headBytes = 0;
    async function* tapped(): AsyncGenerator<Buffer> {
      for await (const chunk of content) {
        utf8.add(chunk);
        if (headBytes < SNIFF_BYTES) {
          const part = Buffer.from(chunk.subarray(0, SNIFF_BYTES - headBytes));
          head.push(part);
          headBytes += part.length;
        }
        yield chunk;
      }
    }
    const blob = await this.#store.put(ctx.organizationId, tapped(), { maxBytes: DOCUMENT_MAX_BYTES, pending: true });
    try {
      if (blob.sizeBytes === 0) {
        throw new DomainError('invalid_argument', 'EMPTY_FILE', 'the file is empty', [{ field: 'file', message: 'must not be empty' }]);
      }
      const contentType = await sniffContentType(Buffer.concat(head), utf8.done());
      return await requestEntityManager(this.#orm).transactional(async (em) => {
        await this.#requireParent(em, ctx.organizationId, parent, true);
        const now = new Date();
        const row: DocumentRow = {
          id: newId(),
          organizationId: ctx.organizationId,
          companyId: parent.kind === 'company' ? parent.id.toLowerCase() : null,
          contactId: parent.kind === 'contact' ? parent.id.toLowerCase() : null,
          ...metadata,
          fileName,
          contentType,
          sizeBytes: blob.sizeBytes,
          sha256: blob.sha256,
          blobKey: blob.key,
          createdAt: now,
          updatedAt: now,
          createdBy: ctx.userId,
          version: 1,
        };
        await em.execute(
          `insert into contacts.document (id, organization_id, company_id, contact_id, name, document_type, expires_on, visibility, file_name,
             content_type, size_bytes, sha256, blob_key, created_at, updated_at, created_by, version)
           values (?, ?, ?, ?, ?, ?, ?::date, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
          [
            row.id,
            row.organizationId,
            row.companyId,
            row.contactId,
            row.name,
            row.documentType,
            row.expiresOn,
            row.visibility,
            row.fileName,
            row.contentType,
            row.sizeBytes,
            row.sha256,
            row.blobKey,
            now,
            now,
            row.createdBy,
          ],
        );
        await claimBlob(em, ctx.organizationId, blob.key);
        recordEvents(em, EVENT_SOURCE, [
          domainEvent('crm.contacts.document.uploaded', 'crm.events.v1.DocumentUploaded', documentsEventsV1.DocumentUploaded, row.id, {
            document: toDocumentMessage(row),
          }),
        ]);
        return row;
      });
    } catch (error) {
      // not delete(): should the transaction have committed after all (its COMMIT reply lost), the claim keeps the blob
      await this.#store
        .discard(ctx.organizationId, blob.key)
        .catch((err: unknown) => this.#logger?.error({ err, key: blob.key }, 'could not discard the blob of a failed upload (the blob sweep removes it)'));
      throw error;
    }
  }

  /** The document `id` if the caller may see it; NOT_FOUND `DOCUMENT_NOT_FOUND` otherwise. */
  async get(id: string): Promise<DocumentRow> {
    const ctx = requireContext();
    const row = await this.#visible(requestEntityManager(this.#orm), ctx, id, false);
    if (!row) throw notFound('document', id);
    return row;
  }

  /**
   * One page of the documents the caller may see: of `parent` (NOT_FOUND unless a live record of
   * the organization) or of the whole organization, by id; with `expiringWithinDays` (0..3650)
   * only those expiring on or before today (UTC date, database clock) + that many days, expired ones included, by
   * expiresOn then id. Errors: INVALID_PAGE_SIZE, INVALID_CURSOR, INVALID_ARGUMENT naming
   * `expiringWithinDays`.
   */
  async list(query: DocumentListQuery): Promise<{ items: DocumentRow[]; nextCursor: string | undefined }> {
    const ctx = requireContext();
    const em = requestEntityManager(this.#orm);
    if (query.parent) await this.#requireParent(em, ctx.organizationId, query.parent, false);
    const params: unknown[] = [ctx.organizationId, seesEveryPrivateDocument(ctx), ctx.userId];
    const where = [`d.organization_id = ?`, `(d.visibility = 'public' or ?::boolean or d.created_by = ?)`];
    if (query.parent) {
      where.push(`d.${query.parent.kind}_id = ?`);
      params.push(query.parent.id);
    } else where.push(LIVE_PARENT);
    const days = query.expiringWithinDays;
    if (days === undefined) {
      return keysetPageById({ pageSize: query.pageSize, cursor: query.cursor }, async (after, limit) => {
        const rows = await em.execute<RawDocument[]>(
          `select ${DOCUMENT_COLUMNS} from contacts.document d where ${where.join(' and ')}${after ? ' and d.id > ?' : ''} order by d.id limit ?`,
          [...params, ...(after ? [after] : []), limit],
        );
        return rows.map(fromRaw);
      });
    }
    if (!Number.isInteger(days) || days < 0 || days > EXPIRING_WITHIN_MAX_DAYS) {
      throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'invalid expiringWithinDays', [
        { field: 'expiringWithinDays', message: `must be a whole number of days between 0 and ${EXPIRING_WITHIN_MAX_DAYS}` },
      ]);
    }
    const limit = pageSize(query.pageSize);
    // today's UTC date by the database's clock (one clock for every replica), unless pinned
    where.push('d.expires_on is not null', `d.expires_on <= (coalesce(?::timestamptz, now()) at time zone 'utc')::date + ?::integer`);
    params.push(query.now ?? null, days);
    if (query.cursor) {
      const cursor = decodeListCursor(query.cursor, 'expires_on', 1);
      const [date] = cursor.values;
      if (!date || !isCalendarDate(date)) throw invalidCursor();
      where.push('(d.expires_on, d.id) > (?::date, ?::uuid)');
      params.push(date, cursor.id);
    }
    const rows = (
      await em.execute<RawDocument[]>(`select ${DOCUMENT_COLUMNS} from contacts.document d where ${where.join(' and ')} order by d.expires_on, d.id limit ?`, [
        ...params,
        limit + 1,
      ])
    ).map(fromRaw);
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeListCursor('expires_on', [last.expiresOn ?? ''], last.id) : undefined };
  }

  /**
   * Changes the metadata in `changes` (name, documentType, expiresOn — null clears it —,
   * visibility) of a document the caller may see (NOT_FOUND otherwise) and change
   * (PERMISSION_DENIED `NOT_ALLOWED`: crm-viewer, or a crm-rep's change of somebody else's
   * document), at `expectedVersion` when given (PRECONDITION_FAILED `VERSION_MISMATCH`). Nothing
   * changes — no new version, no event — when the values are the stored ones; otherwise the
   * version is bumped and `crm.contacts.document.updated` names each changed field with its old
   * and new value. A changed `expiresOn` is a new date for the expiry check: its thresholds fire again.
   */
  async update(id: string, changes: DocumentChanges, expectedVersion: number | undefined): Promise<DocumentRow> {
    const ctx = requireContext();
    const next = checkMetadata(changes, Object.keys(changes) as (keyof DocumentMetadata)[]);
    return requestEntityManager(this.#orm).transactional(async (em) => {
      const row = await this.#changeable(em, ctx, id, expectedVersion);
      const changed = (Object.keys(next) as (keyof DocumentMetadata)[]).filter((k) => next[k] !== row[k]);
      if (changed.length === 0) return row;
      const after: DocumentRow = { ...row, ...next, updatedAt: new Date(), version: row.version + 1 };
      await em.execute(
        `update contacts.document set name = ?, document_type = ?, expires_on = ?::date, visibility = ?, updated_at = ?, version = version + 1
         where id = ? and organization_id = ?`,
        [after.name, after.documentType, after.expiresOn, after.visibility, after.updatedAt, row.id, ctx.organizationId],
      );
      recordEvents(em, EVENT_SOURCE, [
        domainEvent('crm.contacts.document.updated', 'crm.events.v1.DocumentUpdated', documentsEventsV1.DocumentUpdated, row.id, {
          document: toDocumentMessage(after),
          changedFields: changed.map(protoName),
          changes: changed.map((k) => ({ field: protoName(k), oldValue: row[k], newValue: after[k] })),
        }),
      ]);
      return after;
    });
  }

  /**
   * Deletes a document the caller may see and change (errors as {@link update}) and then its
   * content: the row, its expiry notices, the release of its blob ({@link releaseBlob}) and the
   * `crm.contacts.document.deleted` event commit together; the blob is removed right after the
   * commit (should that fail, the failure is logged and the blob sweep removes the released blob
   * later).
   */
  async delete(id: string, expectedVersion: number | undefined): Promise<void> {
    const ctx = requireContext();
    const row = await requestEntityManager(this.#orm).transactional(async (em) => {
      const found = await this.#changeable(em, ctx, id, expectedVersion);
      await releaseBlob(em, ctx.organizationId, found.blobKey);
      await em.execute('delete from contacts.document_expiry_notice where document_id = ? and organization_id = ?', [found.id, ctx.organizationId]);
      await em.execute('delete from contacts.document where id = ? and organization_id = ?', [found.id, ctx.organizationId]);
      recordEvents(em, EVENT_SOURCE, [
        domainEvent('crm.contacts.document.deleted', 'crm.events.v1.DocumentDeleted', documentsEventsV1.DocumentDeleted, found.id, {
          documentId: found.id,
          companyId: found.companyId ?? '',
          contactId: found.contactId ?? '',
        }),
      ]);
      return found;
    });
    await this.#store.delete(ctx.organizationId, row.blobKey).catch((err: unknown) => {
      this.#logger?.error({ err, key: row.blobKey, documentId: row.id }, 'document deleted but its blob could not be removed (the blob sweep removes it)');
    });
  }

  /**
   * The document (NOT_FOUND as {@link get}) and its content as a stream of chunks, read from the
   * blob store as the caller pulls them. The first chunk is read before this resolves, so a
   * missing blob is NOT_FOUND `DOCUMENT_CONTENT_NOT_FOUND` (logged as an error: a document
   * without content) before the caller has sent anything. The caller must either iterate
   * `content` to its end or call its `return()`, which closes the blob's stream.
   */
  async download(id: string): Promise<{ document: DocumentRow; content: AsyncIterableIterator<Buffer> }> {
    const document = await this.get(id);
    const chunks = this.#store.get(document.organizationId, document.blobKey)[Symbol.asyncIterator]();
    let first: IteratorResult<Buffer>;
    try {
      first = await chunks.next();
    } catch (error) {
      if (!(error instanceof DomainError) || error.code !== 'BLOB_NOT_FOUND') throw error;
      this.#logger?.error({ documentId: document.id, key: document.blobKey }, 'the content of a document is missing from the blob store');
      throw new DomainError('not_found', 'DOCUMENT_CONTENT_NOT_FOUND', `the content of document ${id} is not found`);
    }
    return { document, content: withFirst(first, chunks) };
  }

  /** The live parent of the organization (locked `for share` inside a write), or NOT_FOUND naming it. */
  async #requireParent(em: EntityManager, organizationId: string, parent: DocumentParent, lock: boolean): Promise<void> {
    const rows = isUuid(parent.id)
      ? await em.execute<{ id: string }[]>(
          `select id from ${TABLES[parent.kind]} where id = ? and organization_id = ? and deleted_at is null${lock ? ' for share' : ''}`,
          [parent.id, organizationId],
        )
      : [];
    if (rows.length === 0) throw notFound(parent.kind, parent.id);
  }

  /** The document if `ctx` may see it (and its parent is live); `lock` takes it `for update`. */
  async #visible(em: EntityManager, ctx: RequestContext, id: string, lock: boolean): Promise<DocumentRow | undefined> {
    if (!isUuid(id)) return undefined;
    const [raw] = await em.execute<RawDocument[]>(
      `select ${DOCUMENT_COLUMNS} from contacts.document d where d.id = ? and d.organization_id = ? and ${LIVE_PARENT}${lock ? ' for update of d' : ''}`,
      [id, ctx.organizationId],
    );
    const row = raw ? fromRaw(raw) : undefined;
    return row && canSee(ctx, row) ? row : undefined;
  }

  /** The document locked for a change by `ctx`: visible (NOT_FOUND), changeable (PERMISSION_DENIED), at the expected version (PRECONDITION_FAILED). */
  async #changeable(em: EntityManager, ctx: RequestContext, id: string, expectedVersion: number | undefined): Promise<DocumentRow> {
    const row = await this.#visible(em, ctx, id, true);
    if (!row) throw notFound('document', id);
    if (!canChange(ctx, row)) {
      throw new DomainError('permission_denied', 'NOT_ALLOWED', hasAnyRole(ctx, 'crm-rep') ? 'reps may only change documents they uploaded' : 'read-only role');
    }
    if (expectedVersion !== undefined && expectedVersion !== row.version) throw versionMismatch('document', String(expectedVersion), String(row.version));
    return row;
  }
}

/** A row as Postgres returns it for {@link DOCUMENT_COLUMNS}. */
export interface RawDocument {
  id: string;
  organization_id: string;
  company_id: string | null;
  contact_id: string | null;
  name: string;
  document_type: string;
  expires_on: string | null;
  visibility: string;
  file_name: string;
  content_type: string;
  size_bytes: string;
  sha256: string;
  blob_key: string;
  created_at: Date | string;
  updated_at: Date | string;
  created_by: string;
  version: number;
}

/** {@link RawDocument} → {@link DocumentRow}. */
export function fromRaw(raw: RawDocument): DocumentRow {
  return {
    id: raw.id,
    organizationId: raw.organization_id,
    companyId: raw.company_id,
    contactId: raw.contact_id,
    name: raw.name,
    documentType: raw.document_type as DocumentTypeName,
    expiresOn: raw.expires_on,
    visibility: raw.visibility as VisibilityName,
    fileName: raw.file_name,
    contentType: raw.content_type,
    sizeBytes: Number(raw.size_bytes),
    sha256: raw.sha256,
    blobKey: raw.blob_key,
    createdAt: new Date(raw.created_at),
    updatedAt: new Date(raw.updated_at),
    createdBy: raw.created_by,
    version: Number(raw.version),
  };
}

/** The parent an upload header names: exactly one of company_id and contact_id (INVALID_ARGUMENT naming both otherwise). */
function uploadParent(header: documentV1.UploadDocumentHeader): DocumentParent {
  if (header.companyId && !header.contactId) return { kind: 'company', id: header.companyId };
  if (header.contactId && !header.companyId) return { kind: 'contact', id: header.contactId };
  throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'a document belongs to exactly one company or contact', [
    { field: 'companyId', message: 'give exactly one of companyId and contactId' },
    { field: 'contactId', message: 'give exactly one of companyId and contactId' },
  ]);
}

/**
 * Validates the `keys` of `values` (INVALID_ARGUMENT `VALIDATION_FAILED` naming every bad field)
 * and returns them normalised (names trimmed).
 */
function checkMetadata(values: Partial<Record<keyof DocumentMetadata, unknown>>, keys: readonly (keyof DocumentMetadata)[]): Partial<DocumentMetadata> {
  const errors: FieldViolation[] = [];
  const out: Partial<DocumentMetadata> = {};
  for (const key of keys) {
    const value = values[key];
    switch (key) {
      case 'name': {
        const name = typeof value === 'string' ? checkName(value) : undefined;
        if (name === undefined) errors.push({ field: 'name', message: 'must be 1 to 255 characters without control characters' });
        else out.name = name;
        break;
      }
      case 'documentType':
        if (typeof value === 'string' && (DOCUMENT_TYPES as readonly string[]).includes(value)) out.documentType = value as DocumentTypeName;
        else errors.push({ field: 'documentType', message: `must be one of ${DOCUMENT_TYPES.join(', ')}` });
        break;
      case 'expiresOn':
        if (value === null) out.expiresOn = null;
        else if (typeof value === 'string' && isCalendarDate(value)) out.expiresOn = value;
        else errors.push({ field: 'expiresOn', message: 'must be a date YYYY-MM-DD (from 1900) or null' });
        break;
      case 'visibility':
        if (typeof value === 'string' && (VISIBILITIES as readonly string[]).includes(value)) out.visibility = value as VisibilityName;
        else errors.push({ field: 'visibility', message: `must be one of ${VISIBILITIES.join(', ')}` });
        break;
      default: {
        const never: never = key;
        errors.push({ field: String(never), message: 'cannot be changed' });
      }
    }
  }
  if (errors.length) throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'invalid document', errors);
  return out;
}

/** Proto field name of a metadata field (update masks, changed fields). */
export function protoName(key: keyof DocumentMetadata): string {
  return { name: 'name', documentType: 'document_type', expiresOn: 'expires_on', visibility: 'visibility' }[key];
}

/** `DOCUMENT_TYPE_CONTRACT` (1) → `contract`; an unknown number → `''` (refused by validation). */
export function fromProtoType(value: documentV1.DocumentType): string {
  const name = Object.entries(documentV1.DocumentType).find(([, v]) => v === value)?.[0] ?? '';
  return name.startsWith('DOCUMENT_TYPE_') && name !== 'DOCUMENT_TYPE_UNSPECIFIED' ? name.slice('DOCUMENT_TYPE_'.length).toLowerCase() : '';
}

/** `DOCUMENT_VISIBILITY_PRIVATE` (2) → `private`; an unknown number → `''`. */
export function fromProtoVisibility(value: documentV1.DocumentVisibility): string {
  const name = Object.entries(documentV1.DocumentVisibility).find(([, v]) => v === value)?.[0] ?? '';
  return name.startsWith('DOCUMENT_VISIBILITY_') && name !== 'DOCUMENT_VISIBILITY_UNSPECIFIED' ? name.slice('DOCUMENT_VISIBILITY_'.length).toLowerCase() : '';
}

/** A stored document as its proto message. */
export function toDocumentMessage(row: DocumentRow): documentV1.Document {
  return {
    id: row.id,
    companyId: row.companyId ?? '',
    contactId: row.contactId ?? '',
    name: row.name,
    documentType: documentV1.DocumentType[`DOCUMENT_TYPE_${row.documentType.toUpperCase()}` as keyof typeof documentV1.DocumentType],
    expiresOn: row.expiresOn ?? '',
    visibility: documentV1.DocumentVisibility[`DOCUMENT_VISIBILITY_${row.visibility.toUpperCase()}` as keyof typeof documentV1.DocumentVisibility],
    fileName: row.fileName,
    contentType: row.contentType,
    sizeBytes: String(row.sizeBytes),
    sha256: row.sha256,
    audit: { createTime: row.createdAt, updateTime: row.updatedAt, createdBy: row.createdBy, version: String(row.version) },
  };
}

/** The `expiring` event of a document at a threshold, `daysUntilExpiry` days before (negative: after) its expiry. */
export function expiringEvent(row: DocumentRow, thresholdDays: number, daysUntilExpiry: number): PendingEvent {
  return domainEvent('crm.contacts.document.expiring', 'crm.events.v1.DocumentExpiring', documentsEventsV1.DocumentExpiring, row.id, {
    document: toDocumentMessage(row),
    thresholdDays,
    daysUntilExpiry,
  });
}

/**
 * `chunks` with its already-read first result put back in front: an iterator whose `return()`
 * closes `chunks` even when called before the first `next()` (a generator would skip its
 * `finally` then, leaving the blob's stream open).
 */
function withFirst<T>(first: IteratorResult<T>, chunks: AsyncIterator<T>): AsyncIterableIterator<T> {
  let pending: IteratorResult<T> | undefined = first;
  let closed = false;
  const iterator: AsyncIterableIterator<T> = {
    next: async () => {
      if (closed) return { done: true, value: undefined };
      if (pending) {
        const result = pending;
        pending = undefined;
        if (result.done) closed = true;
        return result;
      }
      const result = await chunks.next();
      if (result.done) closed = true;
      return result;
    },
    return: async () => {
      if (!closed) {
        closed = true;
        await chunks.return?.();
      }
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

/** A document moved from one record to another of the same kind by {@link repointDocuments}: what {@link restoreDocumentParents} needs to undo it (plain JSON). */
export interface DocumentMove {
  documentId: string;
  object: 'company' | 'contact';
  /** The record it belonged to before (a merged record). */
  fromId: string;
  /** The record it was moved to (the survivor). */
  toId: string;
}

/**
 * Moves the documents of the `object` records `fromIds` (e.g. the records merged into a survivor)
 * to record `toId`, inside the caller's transaction `em` (the merge's) and request context (for
 * the events): each moved document gets version + 1 and a `crm.contacts.document.updated` event
 * naming `company_id` or `contact_id` with the old and new parent. Only documents of
 * `organizationId`; ids that are no UUIDs name nothing. Rows are locked `for update` in id order.
 * Returns the moves, by document id, for {@link restoreDocumentParents}. Checks neither record
 * (the merge has), nor visibility (a merge moves private documents too: they stay private).
 */
export async function repointDocuments(
  em: EntityManager,
  organizationId: string,
  object: 'company' | 'contact',
  fromIds: readonly string[],
  toId: string,
): Promise<DocumentMove[]> {
  const from = fromIds.filter((id) => isUuid(id) && id.toLowerCase() !== toId.toLowerCase());
  if (from.length === 0 || !isUuid(toId)) return [];
  const column = PARENT_COLUMN[object];
  const moved = await moveDocuments(
    em,
    organizationId,
    column,
    `select id, ${column} as from_id, ?::uuid as to_id from contacts.document
     where organization_id = ? and ${column} = any(?::uuid[]) order by id for update`,
    [toId, organizationId, `{${from.join(',')}}`],
  );
  return moved.map((m) => ({ documentId: m.id, object, fromId: m.from, toId: m.to }));
}

/**
 * Undoes {@link repointDocuments} inside the caller's transaction `em` (the undo's): each
 * document of `moves` still attached to its `toId` goes back to its `fromId` (version + 1 and a
 * `crm.contacts.document.updated` event, as the move). A document deleted since, or moved on
 * since (its record merged again), stays as it is and is listed in `skipped`. Only documents of
 * `organizationId`.
 */
export async function restoreDocumentParents(
  em: EntityManager,
  organizationId: string,
  moves: readonly DocumentMove[],
): Promise<{ restored: string[]; skipped: string[] }> {
  const restored: string[] = [];
  for (const object of ['company', 'contact'] as const) {
    const mine = moves.filter((m) => m.object === object && isUuid(m.documentId) && isUuid(m.fromId) && isUuid(m.toId));
    if (mine.length === 0) continue;
    const column = PARENT_COLUMN[object];
    const moved = await moveDocuments(
      em,
      organizationId,
      column,
      `select d.id, d.${column} as from_id, m.from_id as to_id
       from contacts.document d join jsonb_to_recordset(?::jsonb) as m (document_id uuid, from_id uuid, to_id uuid)
         on m.document_id = d.id and m.to_id = d.${column}
       where d.organization_id = ? order by d.id for update of d`,
      [JSON.stringify(mine.map((m) => ({ document_id: m.documentId, from_id: m.fromId, to_id: m.toId }))), organizationId],
    );
    restored.push(...moved.map((m) => m.id));
  }
  return { restored, skipped: moves.map((m) => m.documentId).filter((id) => !restored.includes(id)) };
}

/** Column of a document's parent of each kind. */
const PARENT_COLUMN = { company: 'company_id', contact: 'contact_id' } as const;

/**
 * Sets `column` of the documents `selection` names (a select of `id`, `from_id`, `to_id` that
 * locks them) to their `to_id`, bumping version and updated_at, and records an `updated` event
 * per document. Returns what moved.
 */
async function moveDocuments(
  em: EntityManager,
  organizationId: string,
  column: 'company_id' | 'contact_id',
  selection: string,
  params: unknown[],
): Promise<{ id: string; from: string; to: string }[]> {
  const now = new Date();
  const rows = await em.execute<(RawDocument & { moved_from: string })[]>(
    `with moving as (${selection})
     update contacts.document d set ${column} = moving.to_id, version = d.version + 1, updated_at = ?
     from moving where d.id = moving.id and d.organization_id = ?
     returning ${DOCUMENT_COLUMNS}, moving.from_id as moved_from`,
    [...params, now, organizationId],
  );
  const field = column === 'company_id' ? 'companyId' : 'contactId';
  const moved = rows.map((raw) => ({ row: fromRaw(raw), from: raw.moved_from }));
  recordEvents(
    em,
    EVENT_SOURCE,
    moved.map(({ row, from }) =>
      domainEvent('crm.contacts.document.updated', 'crm.events.v1.DocumentUpdated', documentsEventsV1.DocumentUpdated, row.id, {
        document: toDocumentMessage(row),
        changedFields: [column],
        changes: [{ field: column, oldValue: from, newValue: row[field] ?? '' }],
      }),
    ),
  );
  return moved.map(({ row, from }) => ({ id: row.id, from, to: row[field] ?? '' }));
}
