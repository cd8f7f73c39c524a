import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { documentsEventsV1 } from '@crm/contracts';
import { unique } from './support/conformance.ts';
import { startTestSuite, type TestSuite } from './support/suite.ts';

/**
 * Documents through the gateway (issue 8): streamed upload → contacts-svc → blob store (Postgres
 * here; the S3 store has its own spec against s3rver), metadata, download headers, visibility of
 * private documents per user, permissions, If-Match, tenancy, the expiring list, what a deleted
 * company does to its documents, and that a refused upload stores nothing. What contacts-svc
 * writes to its blob store is followed through NOTIFYs of test-only triggers on `contacts.blob`
 * and `contacts.blob_chunk` ({@link BlobLog}), so the specs wait on those writes, never poll.
 */
let suite: TestSuite;
let blobs: BlobLog;

beforeAll(async () => {
  suite = await startTestSuite();
  blobs = await watchBlobs(suite);
});

afterAll(async () => {
  await blobs?.close();
  await suite?.close();
});

/** A blob store write contacts-svc made: a `contacts.blob` row inserted or deleted, or a chunk row inserted. */
interface BlobWrite {
  table: 'blob' | 'blob_chunk';
  op: 'INSERT' | 'DELETE';
  key: string;
}

/** The blob store writes since the log started, as the test-only triggers announce them. */
interface BlobLog {
  /** Index of the next write: pass to {@link since}. */
  mark(): number;
  /** The writes from `mark` on. */
  since(mark: number): BlobWrite[];
  /** Resolves once `condition` holds, checked now and on every write announced (fails after 10 s: a guard, not a schedule). */
  until(what: string, condition: () => boolean): Promise<void>;
  close(): Promise<void>;
}

/**
 * Installs triggers on the suite's `contacts.blob` / `contacts.blob_chunk` that NOTIFY each
 * write (the suite's database is this spec's own) and LISTENs to them.
 */
async function watchBlobs(s: TestSuite): Promise<BlobLog> {
  const client = new pg.Client({ connectionString: s.infra.databaseUrl });
  await client.connect();
  await client.query(`create function contacts.crm_test_blob_notify() returns trigger language plpgsql as $$
    declare row jsonb;
    begin
      if tg_op = 'DELETE' then row := to_jsonb(old); else row := to_jsonb(new); end if;
      perform pg_notify('crm_test_blob', json_build_object('table', tg_table_name, 'op', tg_op, 'key', row ->> tg_argv[0])::text);
      return null;
    end $$`);
  await client.query(`create trigger crm_test_blob after insert or delete on contacts.blob for each row execute function contacts.crm_test_blob_notify('key')`);
  await client.query(
    `create trigger crm_test_blob_chunk after insert on contacts.blob_chunk for each row execute function contacts.crm_test_blob_notify('blob_key')`,
  );
  const writes: BlobWrite[] = [];
  const waiters = new Set<() => void>();
  client.on('notification', (n) => {
    writes.push(JSON.parse(n.payload ?? '{}') as BlobWrite);
    for (const wake of waiters) wake();
  });
  await client.query('listen crm_test_blob');
  return {
    mark: () => writes.length,
    since: (mark) => writes.slice(mark),
    until: (what, condition) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!condition()) return;
          clearTimeout(guard);
          waiters.delete(check);
          resolve();
        };
        const guard = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${what}`));
        }, 10_000);
        waiters.add(check);
        check();
      }),
    close: () => client.end(),
  };
}

/** Keys of the blobs inserted in `writes` that are not deleted in them (an upload's leftovers). */
function leftBlobs(writes: BlobWrite[]): string[] {
  const deleted = new Set(writes.filter((w) => w.table === 'blob' && w.op === 'DELETE').map((w) => w.key));
  return writes.filter((w) => w.table === 'blob' && w.op === 'INSERT' && !deleted.has(w.key)).map((w) => w.key);
}

type Json = Record<string, unknown>;
interface Doc {
  id: string;
  companyId: string | null;
  contactId: string | null;
  name: string;
  documentType: string;
  expiresOn: string | null;
  visibility: string;
  fileName: string;
  contentType: string;
  sizeBytes: number;
  sha256: string;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  version: number;
}
interface Page {
  data: Doc[];
  nextCursor: string | null;
}

const MiB = 1024 * 1024;
const MAX = 25 * MiB;
const PDF = Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n', 'latin1');
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function ok<T>(res: Response, status = 200): Promise<T> {
  expect({ status: res.status, body: res.status === status ? 'ok' : await res.text() }).toEqual({ status, body: 'ok' });
  return (await res.json()) as T;
}

async function problemOf(res: Response, status: number): Promise<Json & { errors?: { field: string }[]; code?: string }> {
  expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({ status, type: expect.stringMatching(/^application\/problem\+json/) });
  return (await res.json()) as Json;
}

const company = async (as = 'admin@acme.test'): Promise<string> =>
  (await ok<{ id: string }>(await suite.api('/api/v1/companies', { method: 'POST', json: { name: unique('Doc Co') }, as }), 201)).id;
const contact = async (as = 'admin@acme.test'): Promise<string> =>
  (await ok<{ id: string }>(await suite.api('/api/v1/contacts', { method: 'POST', json: { firstName: 'Dora', lastName: unique('Docs') }, as }), 201)).id;

/** A multipart upload: text fields first, then the file. */
function upload(
  parent: string,
  content: Buffer,
  options: { fields?: Record<string, string>; filename?: string; type?: string; as?: string } = {},
): Promise<Response> {
  const form = new FormData();
  for (const [k, v] of Object.entries(options.fields ?? {})) form.append(k, v);
  form.append('file', new Blob([content], { type: options.type ?? 'application/octet-stream' }), options.filename ?? 'file.bin');
  return suite.api(`/api/v1/${parent}/documents`, { method: 'POST', body: form, as: options.as ?? 'admin@acme.test' });
}

const uploaded = async (parent: string, content: Buffer, options: Parameters<typeof upload>[2] = {}): Promise<Doc> =>
  ok<Doc>(await upload(parent, content, options), 201);

const get = (path: string, as = 'admin@acme.test', headers: Record<string, string> = {}) => suite.api(`/api/v1${path}`, { as, headers });
const ids = (page: Page): string[] => page.data.map((d) => d.id);

async function sql<T>(statement: string, params: unknown[] = []): Promise<T[]> {
  return suite.contacts.orm.em.fork().execute<T[]>(statement, params);
}

/** Blob and chunk rows of an organization (what a refused upload must not leave). */
async function blobRows(): Promise<number> {
  const [row] = await sql<{ n: string }>('select (select count(*) from contacts.blob) + (select count(*) from contacts.blob_chunk) as n');
  return Number(row?.n);
}

/**
 * contacts-svc's DocumentService calls of `method` finished (any status), over all replicas. The
 * service counts a call before it sends the reply, so once the gateway has answered the count is
 * already up.
 */
async function callsHandled(method: 'UploadDocument' | 'GetDocument' | 'DownloadDocument'): Promise<number> {
  let sum = 0;
  // every replica (CRM_TEST_CONTACTS_REPLICAS=2 balances the calls over two)
  for (const replica of suite.contactsReplicas) {
    const metric = await replica.metrics.grpcRequests.get();
    sum += metric.values.filter((v) => String(v.labels['method']).endsWith(`/${method}`)).reduce((n, v) => n + v.value, 0);
  }
  return sum;
}

/** `crm.contacts.document.uploaded` events in the outbox of documents of `parentId`. */
async function uploadedEventsOf(parentId: string): Promise<string[]> {
  const rows = await sql<{ payload: Buffer }>(`select payload from contacts.outbox where subject = 'crm.contacts.document.uploaded'`);
  return rows
    .map((r) => documentsEventsV1.DocumentUploaded.decode(r.payload).document!)
    .filter((d) => d.companyId === parentId || d.contactId === parentId)
    .map((d) => d.id);
}

/** A multipart body whose file part the test feeds: `send` chunks, then `end()`. */
function streamedUpload(fields: Record<string, string> = {}): {
  body: ReadableStream<Uint8Array>;
  contentType: string;
  send(chunk: Uint8Array): void;
  end(): void;
} {
  const boundary = `----crm${randomBytes(8).toString('hex')}`;
  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      for (const [name, value] of Object.entries(fields)) {
        c.enqueue(encoder.encode(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
      }
      c.enqueue(
        encoder.encode(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      );
    },
  });
  return {
    body,
    contentType: `multipart/form-data; boundary=${boundary}`,
    send: (chunk) => controller.enqueue(chunk),
    end: () => {
      controller.enqueue(encoder.encode(`\r\n--${boundary}--\r\n`));
      controller.close();
    },
  };
}

/** POSTs a {@link streamedUpload} to `parent`'s documents. */
function postStreamed(parent: string, upload: ReturnType<typeof streamedUpload>): Promise<Response> {
  return suite.api(`/api/v1/${parent}/documents`, {
    method: 'POST',
    body: upload.body,
    duplex: 'half',
    headers: { 'content-type': upload.contentType },
  } as RequestInit);
}

/** Events of a document in the outbox, decoded by subject. */
async function events(documentId: string): Promise<{ subject: string; data: Json }[]> {
  const rows = await sql<{ subject: string; payload: Buffer }>('select subject, payload from contacts.outbox where aggregate_id = ? order by occurred_at, id', [
    documentId,
  ]);
  return rows.map((r) => {
    const codec = {
      'crm.contacts.document.uploaded': documentsEventsV1.DocumentUploaded,
      'crm.contacts.document.updated': documentsEventsV1.DocumentUpdated,
      'crm.contacts.document.deleted': documentsEventsV1.DocumentDeleted,
      'crm.contacts.document.expiring': documentsEventsV1.DocumentExpiring,
    }[r.subject];
    return { subject: r.subject, data: (codec?.decode(r.payload) ?? {}) as unknown as Json };
  });
}

describe('upload, read, download', () => {
  it('stores a company document with computed size, SHA-256 and a content type sniffed from the bytes', async () => {
    const co = await company();
    const res = await upload(`companies/${co}`, PDF, {
      fields: { name: 'Master agreement', documentType: 'contract', expiresOn: '2027-03-31', visibility: 'public' },
      filename: 'msa.png',
      type: 'image/png', // the client's claim is ignored
    });
    const doc = await ok<Doc>(res, 201);
    expect(res.headers.get('location')).toBe(`/api/v1/documents/${doc.id}`);
    expect(res.headers.get('etag')).toBe('"1"');
    expect(doc).toEqual({
      id: expect.any(String),
      companyId: co,
      contactId: null,
      name: 'Master agreement',
      documentType: 'contract',
      expiresOn: '2027-03-31',
      visibility: 'public',
      fileName: 'msa.png',
      contentType: 'application/pdf',
      sizeBytes: PDF.length,
      sha256: sha256(PDF),
      createdBy: expect.any(String),
      createdAt: expect.any(String),
      updatedAt: doc.createdAt,
      version: 1,
    });
    expect(await ok<Doc>(await get(`/documents/${doc.id}`))).toEqual(doc);
    expect(await events(doc.id)).toEqual([
      { subject: 'crm.contacts.document.uploaded', data: expect.objectContaining({ document: expect.objectContaining({ id: doc.id, sha256: doc.sha256 }) }) },
    ]);
  });

  it('attaches to contacts too, and defaults name to the file name, type other, visibility public', async () => {
    const person = await contact();
    const doc = await uploaded(`contacts/${person}`, Buffer.from('Passport scan notes\n'), { filename: 'C:\\scans\\passport notes.txt' });
    expect(doc).toMatchObject({
      contactId: person,
      companyId: null,
      name: 'passport notes.txt',
      fileName: 'passport notes.txt',
      documentType: 'other',
      visibility: 'public',
      expiresOn: null,
    });
    expect(ids(await ok<Page>(await get(`/contacts/${person}/documents`)))).toEqual([doc.id]);
  });

  it('sniffs PNG, UTF-8 text and unknown bytes, never trusting the name or the declared type', async () => {
    const co = await company();
    const png = await uploaded(`companies/${co}`, PNG, { filename: 'logo.pdf', type: 'application/pdf' });
    const text = await uploaded(`companies/${co}`, Buffer.from('Grüße — 合同\nline 2\n'), { filename: 'notes.bin' });
    const latin1 = await uploaded(`companies/${co}`, Buffer.from('caf\xe9 cr\xe8me', 'latin1'), { filename: 'menu.txt', type: 'text/plain' });
    const binary = await uploaded(`companies/${co}`, Buffer.from([0, 1, 2, 3, 0xff, 0xfe, 0, 9]), { filename: 'x.html', type: 'text/html' });
    expect([png.contentType, text.contentType, latin1.contentType, binary.contentType]).toEqual([
      'image/png',
      'text/plain; charset=utf-8',
      'application/octet-stream',
      'application/octet-stream',
    ]);
  });

  it('downloads the exact bytes with Content-Type, Content-Length, ETag, an RFC 6266 attachment name, and 304 for If-None-Match', async () => {
    const co = await company();
    const content = Buffer.concat([PDF, randomBytes(3 * MiB)]);
    const filename = 'Договор №7; final.pdf';
    const doc = await uploaded(`companies/${co}`, content, { filename });
    const res = await get(`/documents/${doc.id}/content`);
    expect(res.status).toBe(200);
    expect(
      Object.fromEntries(
        ['content-type', 'content-length', 'etag', 'content-disposition', 'x-content-type-options', 'cache-control'].map((h) => [h, res.headers.get(h)]),
      ),
    ).toEqual({
      'content-type': 'application/pdf',
      'content-length': String(content.length),
      etag: `"${sha256(content)}"`,
      'content-disposition': `attachment; filename="??????? ?7; final.pdf"; filename*=UTF-8''${encodeURIComponent(filename).replace(/;/g, '%3B')}`,
      'x-content-type-options': 'nosniff',
      'cache-control': 'private, no-cache',
    });
    expect(Buffer.from(await res.arrayBuffer()).equals(content)).toBe(true);

    const cached = await get(`/documents/${doc.id}/content`, 'admin@acme.test', { 'if-none-match': `W/"x", "${doc.sha256}"` });
    expect({ status: cached.status, etag: cached.headers.get('etag'), body: await cached.text() }).toEqual({ status: 304, etag: `"${doc.sha256}"`, body: '' });
    const stale = await get(`/documents/${doc.id}/content`, 'admin@acme.test', { 'if-none-match': '"0000"' });
    expect(stale.status).toBe(200);
    expect((await stale.arrayBuffer()).byteLength).toBe(content.length);
  });

  it('streams end to end: contacts-svc stores chunks while the client is still sending', async () => {
    const co = await company();
    const part = randomBytes(MiB);
    const total = 12;
    const mark = blobs.mark();
    const chunkRows = () => blobs.since(mark).filter((w) => w.table === 'blob_chunk').length;
    const streamed = streamedUpload({ name: 'Streamed' });
    const response = postStreamed(`companies/${co}`, streamed);
    for (let i = 0; i < total / 2; i++) streamed.send(part);
    // half-way, hold back the rest until contacts-svc has written some of it (≈ 256 KiB a row)
    await blobs.until('blob chunks stored before the upload ended', () => chunkRows() > 4);
    const stored = chunkRows();
    for (let i = total / 2; i < total; i++) streamed.send(part);
    streamed.end();
    const doc = await ok<Doc>(await response, 201);
    expect(stored).toBeGreaterThan(4);
    expect(doc.sizeBytes).toBe(total * MiB);
    expect(doc.sha256).toBe(sha256(Buffer.concat(Array.from({ length: total }, () => part))));
  });

  it('answers 404 problem+json, not a dropped connection, when a document’s content is missing; HEAD still answers from the metadata', async () => {
    const co = await company();
    const doc = await uploaded(`companies/${co}`, randomBytes(600 * 1024), { filename: 'lost.bin' });
    const [row] = await sql<{ blob_key: string }>('select blob_key from contacts.document where id = ?', [doc.id]);
    // the content disappears behind the document (an operator's mistake, a restore of the wrong backup …)
    await sql('delete from contacts.blob_chunk where blob_key = ?', [row!.blob_key]);
    await sql('delete from contacts.blob where key = ?', [row!.blob_key]);
    const res = await get(`/documents/${doc.id}/content`);
    expect(res.headers.get('etag')).toBeNull();
    expect(await problemOf(res, 404)).toMatchObject({ code: 'DOCUMENT_CONTENT_NOT_FOUND' });
    // HEAD reads the metadata only (it never opens the content), so it cannot tell
    expect((await suite.api(`/api/v1/documents/${doc.id}/content`, { method: 'HEAD' })).status).toBe(200);
    // the metadata is intact
    expect((await ok<Doc>(await get(`/documents/${doc.id}`))).sha256).toBe(doc.sha256);
  });

  it('answers HEAD on the content with the headers of GET and no body, without streaming the content', async () => {
    const co = await company();
    const content = Buffer.concat([PDF, randomBytes(2 * MiB)]);
    const doc = await uploaded(`companies/${co}`, content, { filename: 'Kaufvertrag Müller.pdf' });
    const headers = (r: Response) =>
      Object.fromEntries(
        ['content-type', 'content-length', 'etag', 'content-disposition', 'x-content-type-options', 'cache-control'].map((h) => [h, r.headers.get(h)]),
      );
    const full = await get(`/documents/${doc.id}/content`);
    expect(Buffer.from(await full.arrayBuffer()).equals(content)).toBe(true);
    const [downloads, reads] = [await callsHandled('DownloadDocument'), await callsHandled('GetDocument')];
    const head = await suite.api(`/api/v1/documents/${doc.id}/content`, { method: 'HEAD' });
    expect({ status: head.status, headers: headers(head), body: await head.text() }).toEqual({ status: 200, headers: headers(full), body: '' });
    expect({ downloads: await callsHandled('DownloadDocument'), reads: await callsHandled('GetDocument') }).toEqual({ downloads, reads: reads + 1 });
    const cached = await suite.api(`/api/v1/documents/${doc.id}/content`, { method: 'HEAD', headers: { 'if-none-match': `"${doc.sha256}"` } });
    expect(cached.status).toBe(304);
    const foreign = await suite.api(`/api/v1/documents/${doc.id}/content`, { method: 'HEAD', as: 'admin@globex.test' });
    expect({ status: foreign.status, type: foreign.headers.get('content-type'), etag: foreign.headers.get('etag') }).toEqual({
      status: 404,
      type: expect.stringMatching(/^application\/problem\+json/),
      etag: null,
    });
  });
});

describe('refused uploads store nothing', () => {
  it('answers 413 for a file over 25 MiB, leaving no document, blob or event', async () => {
    const co = await company();
    const mark = blobs.mark();
    const before = await blobRows();
    const body = await problemOf(await upload(`companies/${co}`, randomBytes(MAX + 1), { filename: 'huge.bin' }), 413);
    expect(body.type).toBe('urn:crm:problem:payload-too-large');
    // the gateway answered as soon as the limit was passed; the service sees its call cancelled and
    // removes the blob it had begun (after the answer, so wait for that delete)
    await blobs.until(
      'the refused upload’s blob to be removed',
      () => blobs.since(mark).some((w) => w.table === 'blob') && leftBlobs(blobs.since(mark)).length === 0,
    );
    expect(await blobRows()).toBe(before);
    expect((await ok<Page>(await get(`/companies/${co}/documents`))).data).toEqual([]);
    expect(await sql('select id from contacts.document where company_id = ?', [co])).toEqual([]);
    expect(await uploadedEventsOf(co)).toEqual([]);
  });

  it('stores nothing when the company is deleted while its document uploads (the blob is discarded)', async () => {
    const co = await company();
    const before = await blobRows();
    const mark = blobs.mark();
    const streamed = streamedUpload();
    const response = postStreamed(`companies/${co}`, streamed);
    streamed.send(randomBytes(MiB));
    await blobs.until('the upload to have begun storing', () => blobs.since(mark).some((w) => w.table === 'blob_chunk'));
    expect((await suite.api(`/api/v1/companies/${co}`, { method: 'DELETE' })).status).toBe(204);
    streamed.send(randomBytes(MiB));
    streamed.end();
    expect(await problemOf(await response, 404)).toMatchObject({ code: 'COMPANY_NOT_FOUND' });
    // the service discards the blob before it answers
    expect(leftBlobs(blobs.since(mark))).toEqual([]);
    expect(await blobRows()).toBe(before);
    expect(await uploadedEventsOf(co)).toEqual([]);
  });

  it('accepts exactly 25 MiB', async () => {
    const co = await company();
    const doc = await uploaded(`companies/${co}`, Buffer.alloc(MAX, 7), { filename: 'max.bin' });
    expect(doc.sizeBytes).toBe(MAX);
  });

  it('answers 404 for an unknown, malformed or other organization’s company or contact, storing nothing', async () => {
    const globexCompany = await company('admin@globex.test');
    const handled = await callsHandled('UploadDocument');
    const mark = blobs.mark();
    const before = await blobRows();
    for (const parent of [
      `companies/${globexCompany}`,
      'companies/0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f99',
      'companies/not-an-id',
      'contacts/0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f99',
    ]) {
      const body = await problemOf(await upload(parent, randomBytes(256 * 1024)), 404);
      expect(body.code).toMatch(/^(COMPANY|CONTACT)_NOT_FOUND$/);
    }
    // the service checks the parent before it reads any content and answered each call, so all four are over
    expect(await callsHandled('UploadDocument')).toBe(handled + 4);
    expect(await blobRows()).toBe(before);
    expect(leftBlobs(blobs.since(mark))).toEqual([]);
  });

  it('answers 400 naming the field for bad metadata, an empty file or a field after the file', async () => {
    const co = await company();
    const bad = await problemOf(await upload(`companies/${co}`, PDF, { fields: { documentType: 'poem', expiresOn: '2026-02-30', visibility: 'secret' } }), 400);
    expect(bad.errors?.map((e) => e.field).sort()).toEqual(['documentType', 'expiresOn', 'visibility']);
    const long = await problemOf(await upload(`companies/${co}`, PDF, { fields: { name: 'x'.repeat(256) } }), 400);
    expect(long.errors?.map((e) => e.field)).toEqual(['name']);
    const before = await blobRows();
    const empty = await problemOf(await upload(`companies/${co}`, Buffer.alloc(0)), 400);
    expect(empty).toMatchObject({ code: 'EMPTY_FILE', errors: [{ field: 'file' }] });
    // the empty blob was stored, then discarded before the answer
    expect(await blobRows()).toBe(before);
    const form = new FormData();
    form.append('file', new Blob([PDF]), 'a.pdf');
    form.append('name', 'too late');
    const late = await problemOf(await suite.api(`/api/v1/companies/${co}/documents`, { method: 'POST', body: form }), 400);
    expect(late.errors).toEqual([{ field: 'name', message: 'must precede the file' }]);
    expect((await ok<Page>(await get(`/companies/${co}/documents`))).data).toEqual([]);
  });
});

describe('visibility of private documents', () => {
  it('hides a manager’s private document from a rep (404 everywhere, absent from every list) but not from admins', async () => {
    const co = await company();
    const secret = await uploaded(`companies/${co}`, PDF, {
      fields: { visibility: 'private', expiresOn: new Date().toISOString().slice(0, 10) },
      as: 'manager@acme.test',
    });
    const open = await uploaded(`companies/${co}`, PDF, { fields: { expiresOn: new Date().toISOString().slice(0, 10) }, as: 'manager@acme.test' });
    for (const user of ['rep@acme.test', 'viewer@acme.test']) {
      await problemOf(await get(`/documents/${secret.id}`, user), 404);
      await problemOf(await get(`/documents/${secret.id}/content`, user), 404);
      expect(ids(await ok<Page>(await get(`/companies/${co}/documents`, user)))).toEqual([open.id]);
      const expiring = ids(await ok<Page>(await get('/documents?expiringWithinDays=30&limit=200', user)));
      expect(expiring).toContain(open.id);
      expect(expiring).not.toContain(secret.id);
      expect(ids(await ok<Page>(await get('/documents?limit=200', user)))).not.toContain(secret.id);
    }
    await problemOf(await suite.api(`/api/v1/documents/${secret.id}`, { method: 'PATCH', json: { name: 'mine now' }, as: 'rep@acme.test' }), 404);
    await problemOf(await suite.api(`/api/v1/documents/${secret.id}`, { method: 'DELETE', as: 'rep@acme.test' }), 404);
    for (const user of ['manager@acme.test', 'admin@acme.test']) {
      expect((await ok<Doc>(await get(`/documents/${secret.id}`, user))).visibility).toBe('private');
      expect(ids(await ok<Page>(await get(`/companies/${co}/documents`, user)))).toEqual([secret.id, open.id]);
      expect((await get(`/documents/${secret.id}/content`, user)).status).toBe(200);
    }
  });

  it('shows a rep their own private document, and managers, but no viewer', async () => {
    const co = await company();
    const own = await uploaded(`companies/${co}`, PDF, { fields: { visibility: 'private' }, as: 'rep@acme.test' });
    expect((await ok<Doc>(await get(`/documents/${own.id}`, 'rep@acme.test'))).createdBy).toBe(own.createdBy);
    expect(ids(await ok<Page>(await get(`/companies/${co}/documents`, 'rep@acme.test')))).toEqual([own.id]);
    expect((await get(`/documents/${own.id}`, 'manager@acme.test')).status).toBe(200);
    await problemOf(await get(`/documents/${own.id}`, 'viewer@acme.test'), 404);
  });

  it('hides a document made private later from other reps at once', async () => {
    const co = await company();
    const doc = await uploaded(`companies/${co}`, PDF, { as: 'manager@acme.test' });
    expect((await get(`/documents/${doc.id}`, 'rep@acme.test')).status).toBe(200);
    await ok<Doc>(await suite.api(`/api/v1/documents/${doc.id}`, { method: 'PATCH', json: { visibility: 'private' }, as: 'manager@acme.test' }));
    await problemOf(await get(`/documents/${doc.id}`, 'rep@acme.test'), 404);
  });
});

describe('changing and deleting', () => {
  it('patches metadata with If-Match, emitting the changed fields with old and new values', async () => {
    const co = await company();
    const doc = await uploaded(`companies/${co}`, PDF, { fields: { expiresOn: '2027-01-31' } });
    const patch = (json: Json, ifMatch?: string) =>
      suite.api(`/api/v1/documents/${doc.id}`, { method: 'PATCH', json, ...(ifMatch ? { headers: { 'if-match': ifMatch } } : {}) });
    const res = await patch({ name: 'Renewed contract', documentType: 'contract', expiresOn: '2028-01-31' }, '"1"');
    const changed = await ok<Doc>(res);
    expect(res.headers.get('etag')).toBe('"2"');
    expect(changed).toMatchObject({ name: 'Renewed contract', documentType: 'contract', expiresOn: '2028-01-31', version: 2, sha256: doc.sha256 });
    await problemOf(await patch({ name: 'stale' }, '"1"'), 412);
    // the same values again: nothing changes, no new version, no event
    expect((await ok<Doc>(await patch({ name: 'Renewed contract' }))).version).toBe(2);
    expect((await ok<Doc>(await patch({ expiresOn: null }, '"2"'))).expiresOn).toBeNull();
    const updates = (await events(doc.id)).filter((e) => e.subject === 'crm.contacts.document.updated');
    expect(updates.map((e) => e.data['changedFields'])).toEqual([['name', 'document_type', 'expires_on'], ['expires_on']]);
    expect(updates[0]?.data['changes']).toEqual([
      { field: 'name', oldValue: 'file.bin', newValue: 'Renewed contract' },
      { field: 'document_type', oldValue: 'other', newValue: 'contract' },
      { field: 'expires_on', oldValue: '2027-01-31', newValue: '2028-01-31' },
    ]);
    const invalid = await problemOf(await patch({ expiresOn: '31.01.2028', sizeBytes: 1 }), 400);
    expect(invalid.errors?.map((e) => e.field).sort()).toEqual(['expiresOn', 'sizeBytes']);
    await problemOf(await patch({}), 400);
  });

  it('lets reps change only what they uploaded, and viewers nothing', async () => {
    const co = await company();
    const managers = await uploaded(`companies/${co}`, PDF, { as: 'manager@acme.test' });
    const reps = await uploaded(`companies/${co}`, PDF, { as: 'rep@acme.test' });
    await problemOf(await suite.api(`/api/v1/documents/${managers.id}`, { method: 'PATCH', json: { name: 'x' }, as: 'rep@acme.test' }), 403);
    await problemOf(await suite.api(`/api/v1/documents/${managers.id}`, { method: 'DELETE', as: 'rep@acme.test' }), 403);
    expect((await ok<Doc>(await suite.api(`/api/v1/documents/${reps.id}`, { method: 'PATCH', json: { name: 'Mine' }, as: 'rep@acme.test' }))).name).toBe(
      'Mine',
    );
    await problemOf(await suite.api(`/api/v1/documents/${reps.id}`, { method: 'PATCH', json: { name: 'x' }, as: 'viewer@acme.test' }), 403);
    await problemOf(await upload(`companies/${co}`, PDF, { as: 'viewer@acme.test' }), 403);
    expect((await suite.api(`/api/v1/documents/${reps.id}`, { method: 'DELETE', as: 'manager@acme.test' })).status).toBe(204);
  });

  it('deletes the document and its content (If-Match checked), emitting deleted', async () => {
    const co = await company();
    const doc = await uploaded(`companies/${co}`, randomBytes(600 * 1024));
    const [blob] = await sql<{ blob_key: string }>('select blob_key from contacts.document where id = ?', [doc.id]);
    expect(await sql('select key from contacts.blob where key = ?', [blob!.blob_key])).toHaveLength(1);
    await problemOf(await suite.api(`/api/v1/documents/${doc.id}`, { method: 'DELETE', headers: { 'if-match': '"7"' } }), 412);
    expect((await suite.api(`/api/v1/documents/${doc.id}`, { method: 'DELETE', headers: { 'if-match': '"1"' } })).status).toBe(204);
    await problemOf(await get(`/documents/${doc.id}`), 404);
    await problemOf(await get(`/documents/${doc.id}/content`), 404);
    expect(await sql('select key from contacts.blob where key = ?', [blob!.blob_key])).toHaveLength(0);
    expect(await sql('select blob_key from contacts.blob_chunk where blob_key = ?', [blob!.blob_key])).toHaveLength(0);
    expect((await events(doc.id)).at(-1)).toEqual({ subject: 'crm.contacts.document.deleted', data: { documentId: doc.id, companyId: co, contactId: '' } });
    await problemOf(await suite.api(`/api/v1/documents/${doc.id}`, { method: 'DELETE' }), 404);
  });
});

describe('a deleted company hides its documents', () => {
  it('answers 404 for them while it is deleted and serves them again once it is restored', async () => {
    const co = await company();
    const today = new Date().toISOString().slice(0, 10);
    const doc = await uploaded(`companies/${co}`, PDF, { fields: { expiresOn: today } });
    expect((await suite.api(`/api/v1/companies/${co}`, { method: 'DELETE' })).status).toBe(204);
    await problemOf(await get(`/documents/${doc.id}`), 404);
    await problemOf(await get(`/documents/${doc.id}/content`), 404);
    await problemOf(await get(`/companies/${co}/documents`), 404);
    await problemOf(await upload(`companies/${co}`, PDF), 404);
    expect(ids(await ok<Page>(await get('/documents?limit=200')))).not.toContain(doc.id);
    expect(ids(await ok<Page>(await get('/documents?expiringWithinDays=0&limit=200')))).not.toContain(doc.id);
    // the content is kept: a restore (e.g. undoing a merge) brings the document back
    await sql('update contacts.company set deleted_at = null where id = ?', [co]);
    expect((await ok<Doc>(await get(`/documents/${doc.id}`))).sha256).toBe(doc.sha256);
    expect(Buffer.from(await (await get(`/documents/${doc.id}/content`)).arrayBuffer()).equals(PDF)).toBe(true);
  });
});

describe('lists', () => {
  it('pages a company’s documents by upload order with cursors', async () => {
    const co = await company();
    const docs = [];
    for (let i = 0; i < 3; i++) docs.push(await uploaded(`companies/${co}`, Buffer.from(`doc ${i}\n`)));
    const first = await ok<Page>(await get(`/companies/${co}/documents?limit=2`));
    expect(ids(first)).toEqual([docs[0]!.id, docs[1]!.id]);
    const second = await ok<Page>(await get(`/companies/${co}/documents?limit=2&cursor=${first.nextCursor}`));
    expect({ ids: ids(second), next: second.nextCursor }).toEqual({ ids: [docs[2]!.id], next: null });
    await problemOf(await get(`/companies/${co}/documents?cursor=bm90LWEtY3Vyc29y`), 400);
    await problemOf(await get(`/companies/${co}/documents?limit=201`), 400);
  });

  it('lists documents expiring within N days org-wide by expiresOn, expired ones included, with keyset pages', async () => {
    const co = await company();
    const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    const later = await uploaded(`companies/${co}`, PDF, { fields: { expiresOn: day(20) } });
    const expired = await uploaded(`companies/${co}`, PDF, { fields: { expiresOn: day(-3) } });
    const soon = await uploaded(`companies/${co}`, PDF, { fields: { expiresOn: day(6) } });
    const beyond = await uploaded(`companies/${co}`, PDF, { fields: { expiresOn: day(45) } });
    const never = await uploaded(`companies/${co}`, PDF);
    const all: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Page = await ok<Page>(await get(`/documents?expiringWithinDays=30&limit=2${cursor ? `&cursor=${cursor}` : ''}`));
      expect(page.data.length).toBeLessThanOrEqual(2);
      all.push(...ids(page));
      cursor = page.nextCursor;
    } while (cursor);
    const mine = all.filter((id) => [later.id, expired.id, soon.id, beyond.id, never.id].includes(id));
    expect(mine).toEqual([expired.id, soon.id, later.id]);
    const dates = (await ok<Page>(await get('/documents?expiringWithinDays=30&limit=200'))).data.map((d) => d.expiresOn!);
    expect(dates).toEqual([...dates].sort());
    expect(ids(await ok<Page>(await get(`/companies/${co}/documents?expiringWithinDays=7`)))).toEqual([expired.id, soon.id]);
    // empty, blank, signed, fractional, exponent, hex, too large: each a 400 naming the parameter (never read as 0)
    for (const value of ['-1', '', '%20', '+7', '7.5', '1e3', '0x10', 'seven', '3651']) {
      const bad = await problemOf(await get(`/documents?expiringWithinDays=${value}`), 400);
      expect({ value, fields: bad.errors?.map((e) => e.field) }).toEqual({ value, fields: ['expiringWithinDays'] });
    }
    expect((await get('/documents?expiringWithinDays=0&limit=1')).status).toBe(200);
  });
});

describe('tenancy', () => {
  it('never shows another organization’s document: get, content, lists, patch and delete answer 404 or leave it out', async () => {
    const co = await company();
    const today = new Date().toISOString().slice(0, 10);
    const doc = await uploaded(`companies/${co}`, PDF, { fields: { expiresOn: today } });
    const second = await uploaded(`companies/${co}`, PDF, { fields: { expiresOn: today } });
    const acme = [doc.id, second.id];
    const as = 'admin@globex.test';
    await problemOf(await get(`/documents/${doc.id}`, as), 404);
    await problemOf(await get(`/documents/${doc.id}/content`, as), 404);
    await problemOf(await get(`/companies/${co}/documents`, as), 404);
    await problemOf(await suite.api(`/api/v1/documents/${doc.id}`, { method: 'PATCH', json: { name: 'stolen' }, as }), 404);
    await problemOf(await suite.api(`/api/v1/documents/${doc.id}`, { method: 'DELETE', as }), 404);
    expect(ids(await ok<Page>(await get('/documents?limit=200', as)))).not.toContain(doc.id);
    expect(ids(await ok<Page>(await get('/documents?expiringWithinDays=30&limit=200', as)))).not.toContain(doc.id);

    // a cursor of acme's lists resumes nothing of acme's for globex: refused, or a page of globex's own
    const byId = await ok<Page>(await get(`/companies/${co}/documents?limit=1`));
    expect({ ids: ids(byId), next: typeof byId.nextCursor }).toEqual({ ids: [doc.id], next: 'string' });
    const expiring = await ok<Page>(await get(`/companies/${co}/documents?expiringWithinDays=0&limit=1`));
    expect({ ids: ids(expiring), next: typeof expiring.nextCursor }).toEqual({ ids: [doc.id], next: 'string' });
    const replays = [
      `/documents?cursor=${byId.nextCursor}`,
      `/companies/${co}/documents?cursor=${byId.nextCursor}`,
      `/documents?expiringWithinDays=0&cursor=${expiring.nextCursor}`,
      `/documents?expiringWithinDays=30&cursor=${expiring.nextCursor}`,
    ];
    for (const path of replays) {
      const res = await get(`${path}&limit=200`, as);
      if (res.status === 200) expect({ path, acme: ids((await res.json()) as Page).filter((id) => acme.includes(id)) }).toEqual({ path, acme: [] });
      else expect({ path, refused: [400, 404].includes(res.status) }).toEqual({ path, refused: true });
    }
    expect((await ok<Doc>(await get(`/documents/${doc.id}`))).name).toBe('file.bin');
  });
});
