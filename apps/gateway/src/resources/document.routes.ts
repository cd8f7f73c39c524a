import { AsyncResource } from 'node:async_hooks';
import { pipeline } from 'node:stream/promises';
import type { Response } from 'express';
import { documentV1, EXAMPLE_RECORD_ID, EXAMPLE_USER_ID } from '@crm/contracts';
import { callClientStream, callServerStream, callUnary } from '@crm/platform';
import { z } from 'zod';
import { READ_ROLES, WRITE_ROLES } from '../auth/tenant.ts';
import type { BackendContext } from '../backends.ts';
import { listQueryBase, type Page } from '../http/crud.router.ts';
import { multipart } from '../http/multipart.ts';
import type { JsonObject } from '../openapi/openapi.ts';
import { defineRoute, json, jsonBody, noContent, type BodySpec, type ResponseSpec, type Route } from '../http/route.ts';

/**
 * Documents of companies and contacts (issue 8): upload (multipart, streamed end to end: the form
 * → a gRPC client stream → contacts-svc's blob store, never held whole), lists (per record, the
 * organization's, the expiring ones), metadata read/patch, the content download (streamed, with
 * the sniffed `Content-Type`, `Content-Disposition: attachment` with the file name per RFC 6266 /
 * RFC 8187, `ETag` = the SHA-256, `If-None-Match` → 304) and delete. contacts-svc decides
 * visibility: a private document of somebody else is 404 everywhere, as another organization's.
 */

/** Largest upload: 25 MiB, as contacts-svc's `DOCUMENT_MAX_BYTES` (the gateway refuses more with 413 as it streams). */
export const DOCUMENT_MAX_BYTES = 25 * 1024 * 1024;
/** Size of the chunk messages an upload is cut into (the gRPC streaming convention: ≤ 64 KiB). */
const CHUNK_BYTES = 64 * 1024;

const DOCUMENT_TYPES = ['contract', 'proposal', 'invoice', 'id_document', 'certificate', 'other'] as const;
const VISIBILITIES = ['public', 'private'] as const;
type DocumentTypeName = (typeof DOCUMENT_TYPES)[number];
type VisibilityName = (typeof VISIBILITIES)[number];

const documentType = z.enum(DOCUMENT_TYPES).meta({ description: 'what the document is', examples: ['contract'] });
const visibility = z.enum(VISIBILITIES).meta({
  description: 'public: every user of the organization; private: the uploader, crm-manager and crm-admin only (to others it does not exist: 404)',
  examples: ['private'],
});
const name = z
  .string()
  .min(1)
  .max(255)
  .meta({ description: '1..255 characters; by default the file name', examples: ['Master services agreement 2026'] });
const expiresOn = z.iso.date().meta({ description: 'the day it expires (YYYY-MM-DD); reminders 30, 7 and 0 days before', examples: ['2027-03-31'] });
const at = (description: string) => z.iso.datetime().meta({ description, examples: ['2026-11-24T09:30:00.000Z'] });

/** A document as served (component `Document`). */
export const documentSchema = z
  .object({
    id: z.uuid().meta({ description: 'document id (UUIDv7)', examples: [EXAMPLE_RECORD_ID] }),
    companyId: z
      .uuid()
      .nullable()
      .meta({ description: 'the company it belongs to (or null: a contact’s)', examples: ['0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f01'] }),
    contactId: z
      .uuid()
      .nullable()
      .meta({ description: 'the contact it belongs to (or null: a company’s)', examples: [null] }),
    name,
    documentType,
    expiresOn: expiresOn.nullable(),
    visibility,
    fileName: z.string().meta({ description: 'the uploaded file’s name (the download’s file name)', examples: ['MSA-2026-signed.pdf'] }),
    contentType: z.string().meta({ description: 'media type sniffed from the bytes, never taken from the client', examples: ['application/pdf'] }),
    sizeBytes: z
      .int()
      .min(0)
      .meta({ description: 'size of the content in bytes', examples: [482113] }),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .meta({
        description: 'SHA-256 of the content, hex (the download’s ETag)',
        examples: ['9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'],
      }),
    createdBy: z.string().meta({ description: 'Keycloak user id of the uploader', examples: [EXAMPLE_USER_ID] }),
    createdAt: at('when it was uploaded'),
    updatedAt: at('when its metadata last changed'),
    version: z
      .int()
      .min(1)
      .meta({ description: 'optimistic-locking version of the metadata; the ETag of the metadata is its quoted value', examples: [1] }),
  })
  .meta({ id: 'Document', description: 'a file attached to a company or a contact' });

/** A document as served. */
export type DocumentJson = z.infer<typeof documentSchema>;

const documentPage = z
  .object({
    data: z.array(documentSchema),
    nextCursor: z
      .string()
      .nullable()
      .meta({ description: 'pass as cursor for the next page; null on the last', examples: ['MDE5M2E1YjItN2M0ZQ'] }),
  })
  .meta({ id: 'DocumentPage', description: 'one page of documents' });

/** Text fields of an upload (before the file). */
const uploadFields = z.strictObject({
  name: name.optional(),
  documentType: documentType.optional().meta({ description: 'default other' }),
  expiresOn: expiresOn.optional(),
  visibility: visibility.optional().meta({ description: 'default public' }),
});

/** `PATCH /documents/{id}` body (component `DocumentPatch`). */
const documentPatch = z
  .strictObject({
    name: name.optional(),
    documentType: documentType.optional(),
    expiresOn: expiresOn.nullable().optional().meta({ description: 'null: it does not expire; a new date re-arms its reminders' }),
    visibility: visibility.optional(),
  })
  .meta({ id: 'DocumentPatch', description: 'metadata to change', examples: [{ expiresOn: '2028-03-31', visibility: 'private' }] });
type DocumentPatchJson = z.infer<typeof documentPatch>;

/** Largest `expiringWithinDays` (ten years), as contacts-svc's `EXPIRING_WITHIN_MAX_DAYS`. */
const EXPIRING_WITHIN_MAX_DAYS = 3650;

const listQuery = listQueryBase.extend({
  // digits only: z.coerce alone would read '' and ' ' as 0 and '1e3' as 1000
  expiringWithinDays: z
    .preprocess(
      (value) => (typeof value === 'string' && !/^\d{1,9}$/.test(value) ? Number.NaN : value),
      z.coerce
        .number({ error: `must be a whole number of days from 0 to ${EXPIRING_WITHIN_MAX_DAYS}` })
        .int()
        .min(0)
        .max(EXPIRING_WITHIN_MAX_DAYS),
    )
    .optional()
    .describe('only documents expiring on or before today (UTC) + this many days, expired ones included, ordered by expiresOn'),
});

const idParam = (description: string) => z.string().meta({ format: 'uuid', description, examples: [EXAMPLE_RECORD_ID] });
const documentParams = z.strictObject({ id: idParam('document id (UUIDv7)') });
const parentParams = { company: z.strictObject({ id: idParam('company id (UUIDv7)') }), contact: z.strictObject({ id: idParam('contact id (UUIDv7)') }) };

/** An upload's body: the text fields, then the file (OpenAPI example included). */
const uploadBody = withExample(
  multipart({ fields: uploadFields, maxFileSize: DOCUMENT_MAX_BYTES, description: 'the document (any type; at most 25 MiB, not empty)' }),
  { name: 'Master services agreement 2026', documentType: 'contract', expiresOn: '2027-03-31', visibility: 'private', file: '%PDF-1.7 …' },
);

/** `spec` with `example` on each of its request body's media types. */
function withExample<B>(spec: BodySpec<B>, example: Record<string, string>): BodySpec<B> {
  const content = spec.requestBody['content'] as Record<string, JsonObject>;
  return {
    ...spec,
    requestBody: { ...spec.requestBody, content: Object.fromEntries(Object.entries(content).map(([type, media]) => [type, { ...media, example }])) },
  };
}

/** proto enum number → its REST name (`DOCUMENT_TYPE_ID_DOCUMENT` → `id_document`). */
function enumName<T extends string>(values: Record<string, number>, prefix: string, value: number, fallback: T): T {
  const key = Object.entries(values).find(([, v]) => v === value)?.[0];
  return key && key !== `${prefix}UNSPECIFIED` ? (key.slice(prefix.length).toLowerCase() as T) : fallback;
}

/** REST name → proto enum number. */
function enumNumber<V extends number>(values: Readonly<Record<string, V>>, prefix: string, name: string): V {
  return values[`${prefix}${name.toUpperCase()}`] ?? (0 as V);
}

/** A Document message as REST JSON. */
export function documentJson(d: documentV1.Document): DocumentJson {
  return {
    id: d.id,
    companyId: d.companyId || null,
    contactId: d.contactId || null,
    name: d.name,
    documentType: enumName<DocumentTypeName>(documentV1.DocumentType, 'DOCUMENT_TYPE_', d.documentType, 'other'),
    expiresOn: d.expiresOn || null,
    visibility: enumName<VisibilityName>(documentV1.DocumentVisibility, 'DOCUMENT_VISIBILITY_', d.visibility, 'public'),
    fileName: d.fileName,
    contentType: d.contentType,
    sizeBytes: Number(d.sizeBytes),
    sha256: d.sha256,
    createdBy: d.audit?.createdBy ?? '',
    createdAt: (d.audit?.createTime ?? new Date(0)).toISOString(),
    updatedAt: (d.audit?.updateTime ?? new Date(0)).toISOString(),
    version: Number(d.audit?.version ?? 0),
  };
}

/** The strong ETag of a document's content: its quoted SHA-256. */
function contentEtag(sha256: string): string {
  return `"${sha256}"`;
}

/** Whether `If-None-Match` (RFC 9110 §13.1.2: weak comparison, a list or `*`) matches `etag`. */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

/** A document's content as the download route sends it. */
interface DocumentContent {
  document: DocumentJson;
  /** The chunks after the header, the first already read; pulled as the client reads, `return()` cancels the call. */
  chunks: AsyncIterator<Buffer>;
}

/** What the content route's handler gives its response: the metadata (HEAD, If-None-Match) or the content, as the request needs. */
interface DocumentContentSource {
  /** The document's metadata (GetDocument: no content is read). */
  metadata(): Promise<DocumentJson>;
  /**
   * Opens the download and reads its header and first chunk before resolving, so that every
   * failure up to there (no such document, its content missing) rejects before anything is sent.
   */
  open(): Promise<DocumentContent>;
}

/** The headers of a content response (200 or HEAD) for `document`. */
function setContentHeaders(res: Response, document: DocumentJson): void {
  res
    .set('ETag', contentEtag(document.sha256))
    .set('Cache-Control', 'private, no-cache')
    .attachment(document.fileName || document.name);
  // after attachment(), which would set a type from the file name's extension
  res.set('Content-Type', document.contentType).set('Content-Length', String(document.sizeBytes)).set('X-Content-Type-Options', 'nosniff');
}

/**
 * The content response: 200 with `Content-Type` (sniffed by contacts-svc), `Content-Length`,
 * `ETag` (quoted SHA-256), `Content-Disposition: attachment` with the file name (Express's
 * `content-disposition`: an ASCII `filename` fallback plus RFC 8187 `filename*` for the rest, so
 * quotes, semicolons and non-Latin names are safe), `X-Content-Type-Options: nosniff` and
 * `Cache-Control: private, no-cache`. HEAD (which Express routes to GET) and a request with
 * `If-None-Match` ask for the metadata only: HEAD answers the same headers without a body, and a
 * matching ETag answers 304 — neither opens the content. Status and headers are set only once
 * the download's header and first chunk arrived, so a missing document or content is a
 * problem+json 404; an error after the first byte aborts the connection (the client sees a
 * truncated body, shorter than Content-Length).
 */
function documentContentResponse(): ResponseSpec<DocumentContentSource> {
  return {
    transfer: true,
    responses: {
      '200': {
        description: 'the content, streamed (HEAD: the same headers, no body)',
        headers: {
          'Content-Disposition': {
            schema: { type: 'string', examples: [`attachment; filename="Angebot M?ller.pdf"; filename*=UTF-8''Angebot%20M%C3%BCller.pdf`] },
            description: 'attachment, with the file name (RFC 6266; RFC 8187 filename* for non-ASCII)',
          },
          ETag: { schema: { type: 'string' }, description: 'the quoted SHA-256 of the content; send as If-None-Match to get 304 when unchanged' },
          'Content-Length': { schema: { type: 'integer' }, description: 'size in bytes' },
        },
        content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' }, example: '%PDF-1.7 …' } },
      },
      '304': { description: 'If-None-Match holds the current ETag: nothing sent' },
    },
    send: async (res, source) => {
      const head = res.req.method === 'HEAD';
      const ifNoneMatch = res.req.get('if-none-match');
      if (head || ifNoneMatch !== undefined) {
        const document = await source.metadata();
        const etag = contentEtag(document.sha256);
        if (noneMatch(ifNoneMatch, etag)) {
          res.set('ETag', etag).set('Cache-Control', 'private, no-cache').status(304).end();
          return;
        }
        if (head) {
          setContentHeaders(res, document);
          res.status(200).end();
          return;
        }
      }
      const { document, chunks } = await source.open();
      const pull = AsyncResource.bind(() => chunks.next());
      const release = AsyncResource.bind(async () => {
        await chunks.return?.();
      });
      setContentHeaders(res, document);
      res.status(200);
      async function* body(): AsyncGenerator<Buffer> {
        try {
          for (let r = await pull(); !r.done; r = await pull()) yield r.value;
        } finally {
          await release();
        }
      }
      try {
        await pipeline(body(), res);
      } catch (error) {
        // the client went away: nothing to answer, nothing to log
        if (typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'ERR_STREAM_PREMATURE_CLOSE') return;
        throw error;
      }
    },
  };
}

/**
 * Opens DownloadDocument `id`: reads the header and the first chunk (see
 * {@link DocumentContentSource.open}); the call is cancelled when that fails.
 */
async function openDownload(client: documentV1.DocumentServiceClient, id: string): Promise<DocumentContent> {
  const stream = callServerStream(client, client.downloadDocument, { id })[Symbol.asyncIterator]();
  const nextChunk = async (): Promise<IteratorResult<Buffer>> => {
    for (;;) {
      const r = await stream.next();
      if (r.done) return { done: true, value: undefined };
      if (r.value.chunk) return { done: false, value: r.value.chunk };
    }
  };
  let first: IteratorResult<Buffer>;
  let header: documentV1.Document | undefined;
  try {
    const r = await stream.next();
    header = r.done ? undefined : r.value.header;
    if (!header) throw new Error('the document download began without its header');
    first = await nextChunk();
  } catch (error) {
    await stream.return?.();
    throw error;
  }
  // an iterator rather than a generator: return() must cancel the call even before the first next()
  let pending: IteratorResult<Buffer> | undefined = first;
  const chunks: AsyncIterator<Buffer> = {
    next: async () => {
      if (pending) {
        const r = pending;
        pending = undefined;
        return r;
      }
      return nextChunk();
    },
    return: async () => {
      pending = undefined;
      await stream.return?.();
      return { done: true, value: undefined };
    },
  };
  return { document: documentJson(header), chunks };
}

/** The document routes (see the module comment). */
export function documentRoutes(backend: BackendContext): Route[] {
  const client = backend.client(documentV1.DocumentServiceClient);
  const deadlineMs = backend.deadlineMs;
  const list = async (query: z.infer<typeof listQuery>, parent: { companyId?: string; contactId?: string }): Promise<Page<DocumentJson>> => {
    const res = await callUnary(
      client,
      client.listDocuments,
      {
        pageSize: query.limit ?? 0,
        pageToken: query.cursor ?? '',
        companyId: parent.companyId ?? '',
        contactId: parent.contactId ?? '',
        expiringWithinDays: query.expiringWithinDays,
      },
      { deadlineMs },
    );
    return { data: res.documents.map(documentJson), nextCursor: res.nextPageToken || null };
  };

  const parentRoutes = (['company', 'contact'] as const).flatMap((kind) => {
    const plural = kind === 'company' ? 'companies' : 'contacts';
    const Kind = kind === 'company' ? 'Company' : 'Contact';
    return [
      defineRoute({
        method: 'post',
        path: `/${plural}/:id/documents`,
        operationId: `upload${Kind}Document`,
        summary: `Attach a document to a ${kind}`,
        description: `multipart/form-data: the text fields first, then the file (at most 25 MiB = ${DOCUMENT_MAX_BYTES} bytes; more: 413). Streamed to storage as it arrives; nothing is stored unless the whole upload succeeds. The content type is sniffed from the bytes. Answers 201 with Location and the metadata's ETag. Not covered by Idempotency-Key (a streamed body cannot be replayed): on a lost answer, list the ${kind}'s documents before uploading again.`,
        tag: 'documents',
        roles: WRITE_ROLES,
        params: parentParams[kind],
        body: uploadBody,
        response: json(documentSchema, { status: 201, etag: (d) => d.version, location: (d) => `/api/v1/documents/${d.id}` }),
        problems: { '404': `no such ${kind} (or another organization’s, or deleted)` },
        handler: async ({ params, body }) => {
          const header: documentV1.UploadDocumentHeader = {
            companyId: kind === 'company' ? params.id : '',
            contactId: kind === 'contact' ? params.id : '',
            name: body.fields.name ?? '',
            documentType: body.fields.documentType ? enumNumber(documentV1.DocumentType, 'DOCUMENT_TYPE_', body.fields.documentType) : 0,
            expiresOn: body.fields.expiresOn ?? '',
            visibility: body.fields.visibility ? enumNumber(documentV1.DocumentVisibility, 'DOCUMENT_VISIBILITY_', body.fields.visibility) : 0,
            fileName: body.file.filename ?? '',
          };
          async function* requests(): AsyncGenerator<documentV1.UploadDocumentRequest> {
            yield { header };
            for await (const data of body.file.stream as AsyncIterable<Buffer>) {
              for (let at = 0; at < data.length; at += CHUNK_BYTES) yield { chunk: data.subarray(at, at + CHUNK_BYTES) };
            }
          }
          const res = await callClientStream(client, client.uploadDocument, requests());
          return documentJson(res.document!);
        },
      }),
      defineRoute({
        method: 'get',
        path: `/${plural}/:id/documents`,
        operationId: `list${Kind}Documents`,
        summary: `List a ${kind}’s documents`,
        description:
          'The documents the caller may see (private ones of others are left out), keyset-paged in upload order; with expiringWithinDays only those expiring by then, by expiresOn.',
        tag: 'documents',
        roles: READ_ROLES,
        params: parentParams[kind],
        query: listQuery,
        response: json(documentPage, { description: 'one page; pass nextCursor as cursor for the next' }),
        problems: { '404': `no such ${kind} (or another organization’s, or deleted)` },
        handler: ({ params, query }) => list(query, kind === 'company' ? { companyId: params.id } : { contactId: params.id }),
      }),
    ];
  });

  return [
    ...parentRoutes,
    defineRoute({
      method: 'get',
      path: '/documents',
      operationId: 'listDocuments',
      summary: 'List the organization’s documents',
      description:
        'The documents the caller may see, of live companies and contacts, keyset-paged in upload order. `expiringWithinDays=30`: those expiring within 30 days (expired ones included), ordered by expiresOn — the renewal list.',
      tag: 'documents',
      roles: READ_ROLES,
      query: listQuery,
      response: json(documentPage, { description: 'one page; pass nextCursor as cursor for the next' }),
      handler: ({ query }) => list(query, {}),
    }),
    defineRoute({
      method: 'get',
      path: '/documents/:id',
      operationId: 'getDocument',
      summary: 'Get a document’s metadata',
      description: 'The ETag is the metadata version (send it as If-Match to change or delete). The content is at /documents/{id}/content.',
      tag: 'documents',
      roles: READ_ROLES,
      params: documentParams,
      response: json(documentSchema, { description: 'found', etag: (d) => d.version }),
      problems: { '404': 'no such document, or not visible to the caller (another organization’s, somebody else’s private one)' },
      handler: async ({ params }) => documentJson((await callUnary(client, client.getDocument, { id: params.id }, { deadlineMs })).document!),
    }),
    defineRoute({
      method: 'patch',
      path: '/documents/:id',
      operationId: 'updateDocument',
      summary: 'Change a document’s metadata',
      description:
        'Changes the fields sent (name, documentType, expiresOn — null: never expires —, visibility). The uploader, crm-manager and crm-admin may; other reps get 403. With If-Match only if nobody changed it since (else 412).',
      tag: 'documents',
      roles: WRITE_ROLES,
      params: documentParams,
      body: jsonBody(documentPatch, (body) => (Object.keys(body).length ? undefined : 'name at least one field to change')),
      ifMatch: true,
      response: json(documentSchema, { description: 'changed', etag: (d) => d.version }),
      problems: { '404': 'no such document, or not visible to the caller' },
      handler: async ({ params, body, expectedVersion }) => {
        const request: documentV1.UpdateDocumentRequest = {
          document: documentPatchMessage(params.id, body),
          updateMask: Object.keys(body).map((k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)),
          expectedVersion,
        };
        return documentJson((await callUnary(client, client.updateDocument, request, { deadlineMs })).document!);
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/documents/:id',
      operationId: 'deleteDocument',
      summary: 'Delete a document and its content',
      description:
        'For good (no undo). The uploader, crm-manager and crm-admin may; other reps get 403. With If-Match only if nobody changed it since (else 412).',
      tag: 'documents',
      roles: WRITE_ROLES,
      params: documentParams,
      ifMatch: true,
      response: noContent('deleted'),
      problems: { '404': 'no such document, or not visible to the caller' },
      handler: async ({ params, expectedVersion }) => {
        await callUnary(client, client.deleteDocument, { id: params.id, expectedVersion }, { deadlineMs });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/documents/:id/content',
      operationId: 'downloadDocument',
      summary: 'Download a document',
      description:
        'The content, streamed, with the sniffed Content-Type, Content-Disposition: attachment (never rendered inline) and the SHA-256 as ETag (If-None-Match → 304). HEAD answers the same headers without reading the content.',
      tag: 'documents',
      roles: READ_ROLES,
      params: documentParams,
      response: documentContentResponse(),
      problems: { '404': 'no such document, or not visible to the caller, or its content is missing' },
      handler: async ({ params }) => ({
        metadata: async () => documentJson((await callUnary(client, client.getDocument, { id: params.id }, { deadlineMs })).document!),
        open: () => openDownload(client, params.id),
      }),
    }),
  ];
}

/** The Document message of a PATCH body (fields absent from the body stay at their proto defaults: the mask names what counts). */
function documentPatchMessage(id: string, body: DocumentPatchJson): documentV1.Document {
  return {
    ...documentV1.Document.fromPartial({ id }),
    name: body.name ?? '',
    documentType: body.documentType ? enumNumber(documentV1.DocumentType, 'DOCUMENT_TYPE_', body.documentType) : 0,
    expiresOn: body.expiresOn ?? '',
    visibility: body.visibility ? enumNumber(documentV1.DocumentVisibility, 'DOCUMENT_VISIBILITY_', body.visibility) : 0,
  };
}
