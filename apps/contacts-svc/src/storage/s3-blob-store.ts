import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type pg from 'pg';
import { DomainError, isUuid, newId, type Orm } from '@crm/platform';
import {
  asBuffer,
  BlobMeter,
  blobNotFound,
  completeBlobRow,
  insertBlobRow,
  nativePool,
  SWEEP_MAX,
  SWEEPABLE,
  type BlobStore,
  type PutOptions,
  type StoredBlob,
} from './blob-store.ts';

/** Where an {@link S3BlobStore} keeps objects. */
export interface S3BlobStoreOptions {
  bucket: string;
  region: string;
  /** Unset = AWS S3; otherwise the S3-compatible server's URL (MinIO, Ceph RGW, R2, s3rver …). */
  endpoint?: string | undefined;
  /** Path-style URLs (`<endpoint>/<bucket>/<key>`), which most non-AWS servers need. */
  forcePathStyle: boolean;
  /** Explicit credentials (tests); unset = the AWS SDK's default provider chain (env, web identity, instance profile …). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/**
 * Bytes per part of a multipart upload (S3's minimum but for the last part). Content up to this
 * size is one PutObject; larger content is a multipart upload of this part size.
 */
export const S3_PART_BYTES = 5 * 1024 * 1024;
/** Parts in flight at once: an upload holds at most about (this + 1) × {@link S3_PART_BYTES} in memory. */
const S3_QUEUE_SIZE = 1;

/**
 * {@link BlobStore} on an S3-compatible object store (`@aws-sdk/client-s3`, streaming multipart
 * uploads via `@aws-sdk/lib-storage`). A blob's key is a UUID; its object is
 * `<organizationId>/<key>`, so another organization's key names nothing of the caller's. Every
 * object is tracked in `contacts.blob` (registered before the upload starts), so the sweep finds
 * what belongs to nobody without listing the bucket. A failed upload is aborted
 * (AbortMultipartUpload; a single-part upload is only sent once the content ended, so it never
 * started) and its row removed; should the abort fail, the row stays and the sweep aborts the
 * object's multipart uploads later.
 */
export class S3BlobStore implements BlobStore {
  readonly #orm: Orm;
  readonly #client: S3Client;
  readonly #bucket: string;
  #pool: Promise<pg.Pool> | undefined;

  constructor(orm: Orm, options: S3BlobStoreOptions) {
    this.#orm = orm;
    this.#bucket = options.bucket;
    this.#client = new S3Client({
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
    });
  }

  async put(organizationId: string, content: AsyncIterable<Buffer>, options: PutOptions): Promise<StoredBlob> {
    const pool = await this.#native();
    const key = newId();
    const meter = new BlobMeter(options.maxBytes);
    let failure: unknown;
    async function* metered(): AsyncGenerator<Buffer> {
      try {
        for await (const part of content) {
          const chunk = asBuffer(part);
          meter.add(chunk);
          yield chunk;
        }
      } catch (error) {
        failure = error;
        throw error;
      }
    }
    await insertBlobRow(pool, 's3', organizationId, key);
    const upload = new Upload({
      client: this.#client,
      params: {
        Bucket: this.#bucket,
        Key: objectKey(organizationId, key),
        Body: Readable.from(metered(), { objectMode: false }),
        ContentType: 'application/octet-stream',
      },
      partSize: S3_PART_BYTES,
      queueSize: S3_QUEUE_SIZE,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (error) {
      // the uploader aborted its multipart upload; make sure, and drop the row (kept for the sweep if this fails)
      await this.#purge(organizationId, key, { unclaimedOnly: true, multipart: true }).catch(() => undefined);
      // the content's own error (too large, client gone) rather than the uploader's wrapping of it
      throw failure ?? storeError(error);
    }
    const blob = meter.result(key);
    await completeBlobRow(pool, blob, null, options.pending === true);
    return blob;
  }

  async *get(organizationId: string, key: string): AsyncGenerator<Buffer> {
    if (!isUuid(key)) throw blobNotFound();
    let body: AsyncIterable<Uint8Array>;
    try {
      const object = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: objectKey(organizationId, key) }));
      if (!object.Body) throw blobNotFound();
      body = object.Body as AsyncIterable<Uint8Array>;
    } catch (error) {
      if (error instanceof DomainError) throw error;
      if (isNotFound(error)) throw blobNotFound();
      throw storeError(error);
    }
    for await (const chunk of body) yield asBuffer(chunk);
  }

  async delete(organizationId: string, key: string): Promise<void> {
    if (!isUuid(key)) return;
    await this.#purge(organizationId, key, { unclaimedOnly: false, multipart: false });
  }

  async discard(organizationId: string, key: string): Promise<void> {
    if (!isUuid(key)) return;
    await this.#purge(organizationId, key, { unclaimedOnly: true, multipart: false });
  }

  async sweep(options: { now?: Date } = {}): Promise<number> {
    const pool = await this.#native();
    let removed = 0;
    // blobs whose removal failed in this run: skipped, so one bad object cannot stall the rest
    const failed: string[] = [];
    let firstError: unknown;
    while (removed + failed.length < SWEEP_MAX) {
      // one blob per transaction: its row stays locked (other replicas skip it) while the object goes
      const client = await pool.connect();
      let row: { key: string; organization_id: string; complete: boolean } | undefined;
      try {
        await client.query('begin');
        const selected = await client.query<{ key: string; organization_id: string; complete: boolean }>(
          `select b.key, b.organization_id, b.complete from contacts.blob b
           where ${SWEEPABLE} and b.key <> all($3::uuid[]) order by b.created_at limit 1 for update skip locked`,
          ['s3', options.now ?? null, failed],
        );
        row = selected.rows[0];
        if (row) {
          // an incomplete blob is an upload a crashed process left: its parts are in a multipart upload
          await this.#removeObject(row.organization_id, row.key, !row.complete);
          await client.query('delete from contacts.blob where key = $1', [row.key]);
        }
        await client.query('commit');
      } catch (error) {
        await client.query('rollback').catch(() => undefined);
        if (!row) throw error;
        failed.push(row.key);
        firstError ??= error;
        continue;
      } finally {
        client.release();
      }
      if (!row) break;
      removed++;
    }
    if (firstError !== undefined) throw firstError;
    return removed;
  }

  /** Closes the client's sockets. */
  destroy(): void {
    this.#client.destroy();
  }

  /**
   * Removes blob `key`: locks its row (waiting for a claim in flight), removes the object (and with
   * `multipart` any multipart upload of it), then the row, in one transaction — so a failure leaves
   * the row for the sweep. With `unclaimedOnly` nothing happens to a claimed blob.
   */
  async #purge(organizationId: string, key: string, options: { unclaimedOnly: boolean; multipart: boolean }): Promise<void> {
    const client = await (await this.#native()).connect();
    try {
      await client.query('begin');
      const { rows } = await client.query<{ claimed: boolean }>(
        `select claimed_at is not null as claimed from contacts.blob where key = $1 and organization_id = $2 and store = 's3' for update`,
        [key, organizationId],
      );
      const row = rows[0];
      if (options.unclaimedOnly && (!row || row.claimed)) {
        await client.query('commit');
        return;
      }
      await this.#removeObject(organizationId, key, options.multipart);
      if (row) await client.query('delete from contacts.blob where key = $1', [key]);
      await client.query('commit');
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /** Deletes the object (no error when absent) and, with `multipart`, aborts every multipart upload of its key first. */
  async #removeObject(organizationId: string, key: string, multipart: boolean): Promise<void> {
    const Key = objectKey(organizationId, key);
    if (multipart) {
      const listed = await this.#send(() => this.#client.send(new ListMultipartUploadsCommand({ Bucket: this.#bucket, Prefix: Key })));
      for (const upload of listed?.Uploads ?? []) {
        if (upload.Key !== Key || !upload.UploadId) continue;
        await this.#send(() => this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key, UploadId: upload.UploadId })));
      }
    }
    await this.#send(() => this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key })));
  }

  /** A request whose "not found" is no error (undefined); other failures as {@link storeError}. */
  async #send<T>(request: () => Promise<T>): Promise<T | undefined> {
    try {
      return await request();
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw storeError(error);
    }
  }

  #native(): Promise<pg.Pool> {
    this.#pool ??= nativePool(this.#orm);
    return this.#pool;
  }
}

/** The object key of blob `key`: under its organization's prefix. */
function objectKey(organizationId: string, key: string): string {
  return `${organizationId}/${key}`;
}

function isNotFound(error: unknown): boolean {
  return (
    error instanceof S3ServiceException &&
    (error.name === 'NoSuchKey' || error.name === 'NotFound' || error.name === 'NoSuchUpload' || error.$metadata.httpStatusCode === 404)
  );
}

/**
 * An object store failure: unreachable, 5xx or throttled → `unavailable` (503, retry later; the
 * cause kept for the logs, not sent); anything else (access denied, no such bucket: a
 * configuration fault) is returned as is, an internal error that the gRPC edge logs.
 */
function storeError(error: unknown): unknown {
  if (error instanceof DomainError) return error;
  const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
  const transient = !(error instanceof S3ServiceException) || (status !== undefined && status >= 500) || error.name === 'SlowDown';
  if (!transient) return error;
  const unavailable = new DomainError('unavailable', 'BLOB_STORE_UNAVAILABLE', 'the file store is unavailable; retry later');
  unavailable.cause = error;
  return unavailable;
}
