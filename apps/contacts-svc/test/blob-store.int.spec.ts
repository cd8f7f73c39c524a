import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import fc from 'fast-check';
import S3rver from 's3rver';
import { DomainError, newId, type ServiceHandle } from '@crm/platform';
import { serviceEnv, startTestInfra, type TestInfra } from '@crm/testing';
import { configSchema, createContactsService } from '../src/app.ts';
import { claimBlob, createBlobStore, HEAD_BYTES, releaseBlob, STALE_UPLOAD_MS, type BlobStore, type StoredBlob } from '../src/storage/blob-store.ts';
import { CHUNK_BYTES, PostgresBlobStore } from '../src/storage/postgres-blob-store.ts';
import { S3_PART_BYTES, S3BlobStore } from '../src/storage/s3-blob-store.ts';

/**
 * Both blob stores against real servers: the Postgres store on the service's own database, the S3
 * store against s3rver (a local S3-compatible server) started here. Same contract for both: what
 * goes in comes out byte for byte with its size and SHA-256; more than maxBytes, or a failing
 * source, stores nothing (no row, no chunk, no object, no multipart upload); keys are scoped by
 * organization; delete is idempotent; a pending blob is kept once claimed and discarded or swept
 * otherwise. The sweeps run directly with an injected "now" (the service's own sweep is off here).
 */
let infra: TestInfra;
let contacts: ServiceHandle;
let s3: S3rver;
let s3Directory: string;
let s3Endpoint: string;
let s3Admin: S3Client;
const BUCKET = 'crm-documents';
const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const stores: { name: 'postgres' | 's3'; store: () => BlobStore }[] = [];
let postgres: PostgresBlobStore;
let objectStore: S3BlobStore;

beforeAll(async () => {
  infra = await startTestInfra();
  contacts = await createContactsService(configSchema.parse({ ...serviceEnv(infra), BLOB_SWEEP_INTERVAL_MS: '0' }));
  s3Directory = mkdtempSync(join(tmpdir(), 'crm-s3rver-'));
  s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: s3Directory, configureBuckets: [{ name: BUCKET }] });
  addMultipartUploadListing(s3, s3Directory);
  const address = await s3.run();
  s3Endpoint = `http://127.0.0.1:${address.port}`;
  s3Admin = new S3Client({ region: 'us-east-1', endpoint: s3Endpoint, forcePathStyle: true, credentials });
  postgres = new PostgresBlobStore(contacts.orm);
  objectStore = new S3BlobStore(contacts.orm, { bucket: BUCKET, region: 'us-east-1', endpoint: s3Endpoint, forcePathStyle: true, credentials });
});

afterAll(async () => {
  objectStore?.destroy();
  s3Admin?.destroy();
  await s3?.close();
  if (s3Directory) rmSync(s3Directory, { recursive: true, force: true });
  await contacts?.close();
  await infra?.close();
});

stores.push({ name: 'postgres', store: () => postgres }, { name: 's3', store: () => objectStore });

/**
 * s3rver 3.7 implements neither ListMultipartUploads nor AbortMultipartUpload (it answers
 * NotImplemented / 405), so a multipart upload a client abandons could be neither seen nor
 * aborted. This middleware answers both from s3rver's own upload directory
 * (`<bucket>/._S3rver_uploads/<uploadId>/` with the object key in file `key`), as S3 does — just
 * what this spec needs to check that failed uploads leave no multipart upload behind.
 */
function addMultipartUploadListing(server: S3rver, directory: string): void {
  server.middleware.unshift(async (ctx, next) => {
    const [bucket, ...keyParts] = ctx.path.split('/').filter(Boolean).map(decodeURIComponent);
    if (!bucket) return next();
    const uploadsDirectory = join(directory, bucket, '._S3rver_uploads');
    const uploads = (): { key: string; uploadId: string }[] => {
      try {
        return readdirSync(uploadsDirectory).map((uploadId) => ({ uploadId, key: readFileSync(join(uploadsDirectory, uploadId, 'key'), 'utf8') }));
      } catch {
        return [];
      }
    };
    if (ctx.method === 'GET' && keyParts.length === 0 && 'uploads' in ctx.query) {
      const prefix = typeof ctx.query['prefix'] === 'string' ? ctx.query['prefix'] : '';
      const listed = uploads().filter((u) => u.key.startsWith(prefix));
      const xml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
      ctx.type = 'application/xml';
      ctx.body =
        `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
        `<Bucket>${xml(bucket)}</Bucket><Prefix>${xml(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>` +
        listed.map((u) => `<Upload><Key>${xml(u.key)}</Key><UploadId>${xml(u.uploadId)}</UploadId></Upload>`).join('') +
        `</ListMultipartUploadsResult>`;
      return;
    }
    const uploadId = ctx.query['uploadId'];
    if (ctx.method === 'DELETE' && keyParts.length > 0 && typeof uploadId === 'string') {
      const upload = uploads().find((u) => u.uploadId === uploadId && u.key === keyParts.join('/'));
      if (!upload) {
        ctx.status = 404;
        ctx.type = 'application/xml';
        ctx.body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>no such upload</Message></Error>`;
        return;
      }
      rmSync(join(uploadsDirectory, upload.uploadId), { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    await next();
  });
}

const ORG = newId();
const OTHER_ORG = newId();
const MB = 1024 * 1024;

async function* chunksOf(content: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < content.length; i += size) yield content.subarray(i, i + size);
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

const sha256 = (content: Buffer): string => createHash('sha256').update(content).digest('hex');

async function pgCount(sql: string, params: unknown[] = []): Promise<number> {
  const [row] = await contacts.orm.em.fork().execute<{ n: string }[]>(sql, params);
  return Number(row?.n);
}

/** Everything stored for `organizationId`: `contacts.blob` rows, and Postgres chunks or S3 objects and multipart uploads. */
async function stored(name: 'postgres' | 's3', organizationId: string): Promise<Record<string, number>> {
  const rows = await pgCount('select count(*) as n from contacts.blob where organization_id = ?', [organizationId]);
  if (name === 'postgres') return { rows, chunks: await pgCount('select count(*) as n from contacts.blob_chunk where organization_id = ?', [organizationId]) };
  const objects = await s3Admin.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${organizationId}/` }));
  const uploads = await s3Admin.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `${organizationId}/` }));
  return { rows, objects: objects.Contents?.length ?? 0, uploads: uploads.Uploads?.length ?? 0 };
}

const NOTHING = { postgres: { rows: 0, chunks: 0 }, s3: { rows: 0, objects: 0, uploads: 0 } };

/** Whether blob `key` of `organizationId` can still be read in full. */
async function readable(store: BlobStore, organizationId: string, key: string): Promise<boolean> {
  try {
    await readAll(store.get(organizationId, key));
    return true;
  } catch (error) {
    if (error instanceof DomainError && error.code === 'BLOB_NOT_FOUND') return false;
    throw error;
  }
}

/** Claims `blob` in a transaction of its own, as a document upload does with its row. */
async function claim(organizationId: string, blob: StoredBlob): Promise<void> {
  await contacts.orm.em.fork().transactional((em) => claimBlob(em, organizationId, blob.key));
}

/** A moment `ms` from now (the process's clock; the database's is the same machine's). */
const inMs = (ms: number): Date => new Date(Date.now() + ms);

describe.each(stores)('$name blob store', ({ name, store }) => {
  it('gives back what was put, byte for byte, with its size, SHA-256 and head', async () => {
    // past a Postgres chunk row and an S3 part: several rows, a multipart upload
    const content = randomBytes(S3_PART_BYTES + CHUNK_BYTES + 12_345);
    const blob = await store().put(ORG, chunksOf(content, 64 * 1024), { maxBytes: 25 * MB });
    expect(blob).toEqual({ key: expect.any(String), sizeBytes: content.length, sha256: sha256(content), head: content.subarray(0, HEAD_BYTES) });
    expect((await readAll(store().get(ORG, blob.key))).equals(content)).toBe(true);
    // registered, complete and (a plain put) owned by the caller from the start
    const [row] = await contacts.orm.em
      .fork()
      .execute<{ store: string; complete: boolean; claimed: boolean; size_bytes: string }[]>(
        'select store, complete, claimed_at is not null as claimed, size_bytes from contacts.blob where key = ? and organization_id = ?',
        [blob.key, ORG],
      );
    expect(row).toEqual({ store: name, complete: true, claimed: true, size_bytes: String(content.length) });
  });

  it('stores empty content and content smaller than the head', async () => {
    const empty = await store().put(ORG, chunksOf(Buffer.alloc(0), 1), { maxBytes: 10 });
    expect(empty).toMatchObject({ sizeBytes: 0, sha256: sha256(Buffer.alloc(0)), head: Buffer.alloc(0) });
    expect((await readAll(store().get(ORG, empty.key))).length).toBe(0);
    const small = Buffer.from('hello, world\n');
    const blob = await store().put(ORG, chunksOf(small, 3), { maxBytes: small.length });
    expect(blob.head.equals(small)).toBe(true);
    expect((await readAll(store().get(ORG, blob.key))).equals(small)).toBe(true);
  });

  it('refuses the byte past maxBytes with PAYLOAD_TOO_LARGE and stores nothing (no multipart upload left either)', async () => {
    const org = newId();
    const error = await rejection(store().put(org, chunksOf(randomBytes(S3_PART_BYTES * 2 + 1), 64 * 1024), { maxBytes: S3_PART_BYTES * 2 }));
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ kind: 'invalid_argument', code: 'PAYLOAD_TOO_LARGE', violations: [{ field: 'file' }] });
    expect(await stored(name, org)).toEqual(NOTHING[name]);
  });

  it('stores nothing when the content fails midway (the client went away), and rejects with that error', async () => {
    const org = newId();
    const gone = new Error('the client aborted the upload');
    async function* failing(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 100; i++) yield randomBytes(64 * 1024); // 6.25 MiB: a Postgres row or more, an S3 part
      throw gone;
    }
    expect(await rejection(store().put(org, failing(), { maxBytes: 25 * MB }))).toBe(gone);
    expect(await stored(name, org)).toEqual(NOTHING[name]);
  });

  it('scopes keys by organization: another organization’s key is not found and its delete changes nothing', async () => {
    const content = Buffer.from('contract text');
    const blob = await store().put(ORG, chunksOf(content, 4), { maxBytes: 100 });
    const error = await rejection(readAll(store().get(OTHER_ORG, blob.key)));
    expect(error).toMatchObject({ kind: 'not_found', code: 'BLOB_NOT_FOUND' });
    await store().delete(OTHER_ORG, blob.key);
    expect((await readAll(store().get(ORG, blob.key))).equals(content)).toBe(true);
    for (const key of ['not-a-key', newId(), `${ORG}/${newId()}`, `${OTHER_ORG}/../${blob.key}`]) {
      expect(await rejection(readAll(store().get(ORG, key)))).toMatchObject({ code: 'BLOB_NOT_FOUND' });
    }
  });

  it('deletes, and deleting again is no error', async () => {
    const blob = await store().put(ORG, chunksOf(Buffer.from('x'.repeat(1000)), 100), { maxBytes: 1000 });
    await store().delete(ORG, blob.key);
    expect(await rejection(readAll(store().get(ORG, blob.key)))).toMatchObject({ code: 'BLOB_NOT_FOUND' });
    await expect(store().delete(ORG, blob.key)).resolves.toBeUndefined();
  });

  it('sweeps a pending blob nobody claimed once it is older than STALE_UPLOAD_MS, and a released one, never a claimed one', async () => {
    const org = newId();
    const put = (pending: boolean) => store().put(org, chunksOf(randomBytes(300 * 1024), 64 * 1024), { maxBytes: MB, pending });
    const orphan = await put(true); // its uploader crashed before the document's insert committed
    const claimed = await put(true);
    await claim(org, claimed);
    const owned = await put(false);
    const released = await put(true);
    await claim(org, released);
    await contacts.orm.em.fork().transactional((em) => releaseBlob(em, org, released.key)); // its document deleted, the delete after the commit failed

    // younger than the limit: an upload may still be on its way to its claim
    await store().sweep({ now: inMs(STALE_UPLOAD_MS - 60_000) });
    for (const blob of [orphan, claimed, owned, released]) expect(await readable(store(), org, blob.key)).toBe(true);

    expect(await store().sweep({ now: inMs(STALE_UPLOAD_MS + 60_000) })).toBeGreaterThanOrEqual(2);
    const left = { orphan: false, claimed: true, owned: true, released: false };
    expect({
      orphan: await readable(store(), org, orphan.key),
      claimed: await readable(store(), org, claimed.key),
      owned: await readable(store(), org, owned.key),
      released: await readable(store(), org, released.key),
    }).toEqual(left);
    for (const blob of [claimed, owned]) await store().delete(org, blob.key);
    expect(await stored(name, org)).toEqual(NOTHING[name]);
    // claiming what was swept fails: the document's transaction must roll back
    await expect(claim(org, orphan)).rejects.toMatchObject({ kind: 'unavailable', code: 'BLOB_GONE' });
  });

  it('discards an unclaimed blob, but never one whose claim committed — also when asked while the claim is still in flight', async () => {
    const org = newId();
    const put = () => store().put(org, chunksOf(Buffer.from('signed contract'), 4), { maxBytes: 100, pending: true });
    const unclaimed = await put();
    await store().discard(org, unclaimed.key);
    expect(await readable(store(), org, unclaimed.key)).toBe(false);

    // the upload's COMMIT reply is lost: the catch discards while the claim's transaction may still commit
    const committed = await put();
    let discarding: Promise<void> | undefined;
    await contacts.orm.em.fork().transactional(async (em) => {
      await claimBlob(em, org, committed.key);
      discarding = store().discard(org, committed.key); // waits for the claim's row lock
    });
    await discarding;
    expect(await readable(store(), org, committed.key)).toBe(true);

    const rolledBack = await put();
    const failure = new Error('the insert failed');
    await expect(
      contacts.orm.em.fork().transactional(async (em) => {
        await claimBlob(em, org, rolledBack.key);
        discarding = store().discard(org, rolledBack.key);
        throw failure;
      }),
    ).rejects.toBe(failure);
    await discarding;
    expect(await readable(store(), org, rolledBack.key)).toBe(false);
    await store().delete(org, committed.key);
    expect(await stored(name, org)).toEqual(NOTHING[name]);
  });
});

describe('postgres blob store', () => {
  it('writes while the content still streams in: chunk rows exist before the source ended', async () => {
    const org = newId();
    const seen: number[] = [];
    async function* watched(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 32; i++) {
        // 32 × 64 KiB = 2 MiB; after 1 MiB has been handed over, rows must already be there
        if (i === 16 || i === 31) seen.push(await pgCount('select count(*) as n from contacts.blob_chunk where organization_id = ?', [org]));
        yield randomBytes(64 * 1024);
      }
    }
    const blob = await postgres.put(org, watched(), { maxBytes: 4 * MB });
    expect(seen[0]).toBeGreaterThanOrEqual(3);
    expect(seen[1]).toBeGreaterThan(seen[0]!);
    expect(await pgCount('select chunk_count as n from contacts.blob where key = ?', [blob.key])).toBe((2 * MB) / CHUNK_BYTES);
  });

  it('hides a blob still being written, and sweeps the incomplete blobs a crashed process left', async () => {
    const org = newId();
    const crashed = newId();
    const em = contacts.orm.em.fork();
    await em.execute(`insert into contacts.blob (key, organization_id, store, complete, created_at) values (?, ?, 'postgres', false, now())`, [crashed, org]);
    await em.execute(`insert into contacts.blob_chunk (blob_key, seq, organization_id, data) values (?, 0, ?, '\\x00')`, [crashed, org]);
    expect(await rejection(readAll(postgres.get(org, crashed)))).toMatchObject({ code: 'BLOB_NOT_FOUND' });

    // an upload younger than any call's deadline is left alone
    await postgres.sweep({ now: inMs(STALE_UPLOAD_MS - 60_000) });
    expect(await stored('postgres', org)).toEqual({ rows: 1, chunks: 1 });
    await postgres.sweep({ now: inMs(STALE_UPLOAD_MS + 60_000) });
    expect(await stored('postgres', org)).toEqual(NOTHING.postgres);
  });

  it('reads back exactly what went in, however the content is cut into messages (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 3 * CHUNK_BYTES }),
        fc.array(fc.integer({ min: 1, max: 200_000 }), { minLength: 1, maxLength: 8 }),
        async (size, cuts) => {
          const content = randomBytes(size);
          async function* cut(): AsyncGenerator<Buffer> {
            let at = 0;
            for (let i = 0; at < content.length; i++) {
              const next = Math.min(content.length, at + cuts[i % cuts.length]!);
              yield content.subarray(at, next);
              at = next;
            }
          }
          const blob = await postgres.put(ORG, cut(), { maxBytes: 3 * CHUNK_BYTES });
          expect(blob.sizeBytes).toBe(size);
          expect(blob.sha256).toBe(sha256(content));
          expect((await readAll(postgres.get(ORG, blob.key))).equals(content)).toBe(true);
          await postgres.delete(ORG, blob.key);
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('s3 blob store', () => {
  it('sweeps the upload a crashed process left: aborts its multipart upload and drops its row', async () => {
    const org = newId();
    const key = newId();
    // what a process that died mid-upload leaves: the registered row and an open multipart upload with a part
    await contacts.orm.em
      .fork()
      .execute(`insert into contacts.blob (key, organization_id, store, complete, created_at) values (?, ?, 's3', false, now())`, [key, org]);
    const started = await s3Admin.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: `${org}/${key}` }));
    await s3Admin.send(new UploadPartCommand({ Bucket: BUCKET, Key: `${org}/${key}`, UploadId: started.UploadId, PartNumber: 1, Body: randomBytes(1024) }));
    expect(await stored('s3', org)).toEqual({ rows: 1, objects: 0, uploads: 1 });

    await objectStore.sweep({ now: inMs(STALE_UPLOAD_MS - 60_000) });
    expect(await stored('s3', org)).toEqual({ rows: 1, objects: 0, uploads: 1 });
    expect(await objectStore.sweep({ now: inMs(STALE_UPLOAD_MS + 60_000) })).toBeGreaterThanOrEqual(1);
    expect(await stored('s3', org)).toEqual(NOTHING.s3);
  });
});

describe('createBlobStore', () => {
  const config = (env: Record<string, string> = {}) => configSchema.parse({ ...serviceEnv(infra), ...env });

  it('is the Postgres store by default and the S3 store with BLOB_STORE=s3', () => {
    expect(config().BLOB_STORE).toBe('postgres');
    expect(createBlobStore({ orm: contacts.orm, config: config() })).toBeInstanceOf(PostgresBlobStore);
    const s3Config = config({ BLOB_STORE: 's3', S3_BUCKET: BUCKET, S3_ENDPOINT: s3Endpoint, S3_FORCE_PATH_STYLE: 'true' });
    expect(s3Config).toMatchObject({ BLOB_STORE: 's3', S3_BUCKET: BUCKET, S3_REGION: 'us-east-1', S3_ENDPOINT: s3Endpoint, S3_FORCE_PATH_STYLE: true });
    const store = createBlobStore({ orm: contacts.orm, config: s3Config });
    expect(store).toBeInstanceOf(S3BlobStore);
    (store as S3BlobStore).destroy();
  });

  it('refuses BLOB_STORE=s3 without a bucket, and an unknown store, at boot', () => {
    expect(() => createBlobStore({ orm: contacts.orm, config: config({ BLOB_STORE: 's3' }) })).toThrow(/S3_BUCKET/);
    expect(() => config({ BLOB_STORE: 'disk' })).toThrow(/BLOB_STORE/);
    expect(() => config({ S3_ENDPOINT: 'not a url' })).toThrow(/S3_ENDPOINT/);
  });
});
