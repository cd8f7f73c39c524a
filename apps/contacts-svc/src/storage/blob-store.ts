import { createHash, type Hash } from 'node:crypto';
import { defineEntity, p } from '@mikro-orm/core';
import type pg from 'pg';
import { DomainError, isUuid, type EntityManager, type Orm } from '@crm/platform';
import { z } from 'zod';
import { PostgresBlobStore } from './postgres-blob-store.ts';
import { S3BlobStore } from './s3-blob-store.ts';

/** How many leading bytes {@link StoredBlob.head} keeps: what `file-type` needs to sniff every type it knows. */
export const HEAD_BYTES = 4100;

/**
 * Age after which a blob that belongs to nobody — an upload still incomplete, a pending blob never
 * claimed ({@link PutOptions.pending}), a released one — is removed by {@link BlobStore.sweep}:
 * well above the gateway's 10-minute deadline of a streamed call, so no upload in progress and no
 * claim about to commit is swept.
 */
export const STALE_UPLOAD_MS = 60 * 60 * 1000;

/** A stored object: opaque key, size in bytes, SHA-256 hex, and its first ≤ 4,100 bytes (for sniffing). */
export interface StoredBlob {
  /** Opaque (a UUID), names the object within its organization (never shown to API clients). */
  key: string;
  sizeBytes: number;
  /** SHA-256 of the content, 64 lowercase hex digits. */
  sha256: string;
  /** The first min(sizeBytes, {@link HEAD_BYTES}) bytes. */
  head: Buffer;
}

/** Options of {@link BlobStore.put}. */
export interface PutOptions {
  /** Largest content accepted, bytes. */
  maxBytes: number;
  /**
   * true: the blob is stored *pending*: it belongs to nobody until the caller claims it with
   * {@link claimBlob} in the transaction that stores its reference (e.g. the document row); a
   * pending blob older than {@link STALE_UPLOAD_MS} — its caller crashed or failed before that
   * commit — is removed by {@link BlobStore.sweep}. Absent/false: owned from the moment `put`
   * resolves; the caller deletes it when done.
   */
  pending?: boolean;
}

/**
 * Where file contents live (Postgres by default, S3-compatible in production). Keys are scoped by
 * organization. Every object of either store has a row in `contacts.blob` from before its first
 * byte until it is removed (see {@link BlobEntity}), so nothing stored can be lost track of: what
 * belongs to nobody is found there by {@link BlobStore.sweep}, never by listing the store.
 */
export interface BlobStore {
  /**
   * Streams `content` in and resolves once it is stored durably. Rejects with DomainError
   * invalid_argument `PAYLOAD_TOO_LARGE` (field `file`) as soon as more than `maxBytes` arrived,
   * or with the error of `content` or of the store; on any failure nothing stays stored (or, if
   * even the cleanup failed, the sweep removes it later).
   */
  put(organizationId: string, content: AsyncIterable<Buffer>, options: PutOptions): Promise<StoredBlob>;
  /**
   * The content as a stream of chunks; DomainError not_found `BLOB_NOT_FOUND` when absent (or
   * another organization's). Lazy: nothing is read before the first chunk is pulled, so a missing
   * blob fails the first `next()`.
   */
  get(organizationId: string, key: string): AsyncIterable<Buffer>;
  /** Removes it, claimed or not; no error when already gone (nor for another organization's key: nothing happens). */
  delete(organizationId: string, key: string): Promise<void>;
  /**
   * Removes a pending blob unless it has been claimed: for the caller whose claiming transaction
   * failed — or whose outcome it cannot know (a COMMIT whose reply was lost). It takes the blob's
   * row lock first, so it waits for a claim still in flight and then sees it committed or rolled
   * back; a committed claim keeps the blob. No error when already gone.
   */
  discard(organizationId: string, key: string): Promise<void>;
  /**
   * Removes, across organizations, the blobs of this store that belong to nobody and are older
   * than {@link STALE_UPLOAD_MS} as of `now` (default: the database's clock): incomplete uploads
   * of a crashed process (for S3 with their multipart uploads), pending blobs never claimed,
   * released ones whose delete failed. Safe with several replicas sweeping at once (rows are taken
   * `for update skip locked`); at most 1,000 per call. Resolves with how many were removed.
   */
  sweep(options?: { now?: Date }): Promise<number>;
}

/**
 * `contacts.blob`: one stored object of either {@link BlobStore} (`store` names which). Written
 * `complete = false` before the first byte and completed (size, sha256, for Postgres the chunk
 * count) after the last, so a reader never sees a partial object. `claimed_at` is set when
 * something references the blob (at completion for a plain put; by {@link claimBlob} in the
 * owner's transaction for a pending one) and cleared by {@link releaseBlob}; rows with no claim
 * older than {@link STALE_UPLOAD_MS} are what the sweep removes (`blob_unclaimed_idx`).
 */
export const BlobEntity = defineEntity({
  name: 'Blob',
  tableName: 'blob',
  indexes: [{ name: 'blob_unclaimed_idx', properties: ['createdAt'], where: 'claimed_at is null' }],
  checks: [{ name: 'blob_store_check', expression: `store in ('postgres', 's3')` }],
  properties: {
    key: p.uuid().primary(),
    organizationId: p.uuid(),
    store: p.text(),
    complete: p.boolean(),
    sizeBytes: p.bigint('number').nullable(),
    sha256: p.text().nullable(),
    chunkCount: p.integer().nullable(),
    createdAt: p.datetime(),
    claimedAt: p.datetime().nullable(),
  },
});

/** Which store a `contacts.blob` row belongs to. */
export type BlobStoreName = 'postgres' | 's3';

/**
 * Claims a pending blob ({@link PutOptions.pending}) for its owner, inside the owner's
 * transaction `em` — the one that stores the reference — so the reference and the claim commit or
 * roll back together. Until that commit the row stays locked: a concurrent
 * {@link BlobStore.discard} or sweep waits or skips it. Throws DomainError unavailable
 * `BLOB_GONE` when the blob is no complete, unclaimed blob of the organization (swept after more
 * than {@link STALE_UPLOAD_MS}, or claimed twice): the transaction must roll back.
 */
export async function claimBlob(em: EntityManager, organizationId: string, key: string): Promise<void> {
  const rows = isUuid(key)
    ? await em.execute<{ key: string }[]>(
        'update contacts.blob set claimed_at = now() where key = ? and organization_id = ? and complete and claimed_at is null returning key',
        [key, organizationId],
      )
    : [];
  if (rows.length !== 1) throw new DomainError('unavailable', 'BLOB_GONE', 'the uploaded content is no longer stored; upload it again');
}

/**
 * Releases a blob inside the transaction `em` that drops its last reference (e.g. deletes the
 * document): should removing the content after the commit fail, the sweep removes it later. No
 * error for a key without a row.
 */
export async function releaseBlob(em: EntityManager, organizationId: string, key: string): Promise<void> {
  if (!isUuid(key)) return;
  await em.execute('update contacts.blob set claimed_at = null where key = ? and organization_id = ?', [key, organizationId]);
}

/** The pg pool under `orm` (the stores stream through it: one short statement per chunk, no transaction held open). */
export function nativePool(orm: Orm): Promise<pg.Pool> {
  return orm.em.getConnection().getNativeClient() as Promise<pg.Pool>;
}

/** Registers a new blob of `store`: incomplete, unclaimed, created now (database clock). */
export async function insertBlobRow(pool: pg.Pool, store: BlobStoreName, organizationId: string, key: string): Promise<void> {
  await pool.query('insert into contacts.blob (key, organization_id, store, complete, created_at) values ($1, $2, $3, false, now())', [
    key,
    organizationId,
    store,
  ]);
}

/** Marks a blob stored in full; claimed at once unless `pending`. */
export async function completeBlobRow(pool: pg.Pool, blob: StoredBlob, chunkCount: number | null, pending: boolean): Promise<void> {
  await pool.query(
    `update contacts.blob set complete = true, size_bytes = $2, sha256 = $3, chunk_count = $4, claimed_at = case when $5::boolean then null else now() end
     where key = $1`,
    [blob.key, blob.sizeBytes, blob.sha256, chunkCount, pending],
  );
}

/** SQL condition on `contacts.blob b` for what {@link BlobStore.sweep} removes; `$1` is the store, `$2` "now" or null (database clock). */
export const SWEEPABLE = `b.store = $1 and b.claimed_at is null and b.created_at < coalesce($2::timestamptz, now()) - interval '${STALE_UPLOAD_MS / 1000} seconds'`;

/** Most blobs one {@link BlobStore.sweep} removes. */
export const SWEEP_MAX = 1000;

/**
 * Environment of the blob store (part of contacts-svc's config schema):
 * - `BLOB_STORE`: `postgres` (default; chunks in table `contacts.blob_chunk`, nothing else to run)
 *   or `s3` (any S3-compatible object store; objects `<organizationId>/<key>`, tracked in
 *   `contacts.blob` all the same);
 * - `S3_BUCKET` (required with `s3`), `S3_REGION` (default `us-east-1`), `S3_ENDPOINT` (unset =
 *   AWS; e.g. `https://minio.storage:9000` for MinIO/Ceph/R2), `S3_FORCE_PATH_STYLE` (`true` for
 *   most non-AWS servers). Credentials come from the AWS SDK's default provider chain
 *   (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, web identity/IRSA, instance profile …), never
 *   from this config;
 * - `BLOB_SWEEP_INTERVAL_MS` (default 10 minutes; `0` turns the sweep off in this process): how
 *   often {@link BlobStore.sweep} runs (see blob-sweep.worker.ts).
 */
export const blobStoreEnv = {
  BLOB_STORE: z.enum(['postgres', 's3']).default('postgres'),
  BLOB_SWEEP_INTERVAL_MS: z.coerce.number().int().min(0).default(600_000),
  S3_BUCKET: z.string().min(1).optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_ENDPOINT: z.url().optional(),
  S3_FORCE_PATH_STYLE: z.stringbool().default(false),
};

/** The parsed {@link blobStoreEnv} settings. */
export type BlobStoreConfig = z.infer<z.ZodObject<typeof blobStoreEnv>>;

/**
 * The store chosen by configuration (`BLOB_STORE=postgres|s3`, S3_* variables). Throws (at boot)
 * when `BLOB_STORE=s3` has no `S3_BUCKET`.
 */
export function createBlobStore(deps: { orm: Orm; config: BlobStoreConfig }): BlobStore {
  const { config } = deps;
  switch (config.BLOB_STORE) {
    case 'postgres':
      return new PostgresBlobStore(deps.orm);
    case 's3': {
      if (!config.S3_BUCKET) throw new Error('invalid configuration:\n  S3_BUCKET: required when BLOB_STORE=s3');
      return new S3BlobStore(deps.orm, {
        bucket: config.S3_BUCKET,
        region: config.S3_REGION,
        endpoint: config.S3_ENDPOINT,
        forcePathStyle: config.S3_FORCE_PATH_STYLE,
      });
    }
    default: {
      const never: never = config.BLOB_STORE;
      throw new Error(`unknown BLOB_STORE ${String(never)}`);
    }
  }
}

/** DomainError for content over `maxBytes` (field `file`). */
export function payloadTooLarge(maxBytes: number): DomainError {
  return new DomainError('invalid_argument', 'PAYLOAD_TOO_LARGE', `the content is larger than ${maxBytes} bytes`, [
    { field: 'file', message: `must be at most ${maxBytes} bytes` },
  ]);
}

/** DomainError for a key that names no stored object of the organization. */
export function blobNotFound(): DomainError {
  return new DomainError('not_found', 'BLOB_NOT_FOUND', 'the stored content is not found');
}

/**
 * What every store computes while content streams in: size, SHA-256 and the head, refusing the
 * byte past `maxBytes` (by throwing {@link payloadTooLarge}).
 */
export class BlobMeter {
  readonly #maxBytes: number;
  readonly #hash: Hash = createHash('sha256');
  readonly #head: Buffer[] = [];
  #headBytes = 0;
  #size = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Counts and hashes `chunk`; throws {@link payloadTooLarge} once the total exceeds maxBytes. */
  add(chunk: Buffer): void {
    this.#size += chunk.length;
    if (this.#size > this.#maxBytes) throw payloadTooLarge(this.#maxBytes);
    this.#hash.update(chunk);
    if (this.#headBytes < HEAD_BYTES) {
      const part = chunk.subarray(0, HEAD_BYTES - this.#headBytes);
      // a copy: the caller may reuse its buffer
      this.#head.push(Buffer.from(part));
      this.#headBytes += part.length;
    }
  }

  /** The stored blob's description under `key` (call once, after the last chunk). */
  result(key: string): StoredBlob {
    return { key, sizeBytes: this.#size, sha256: this.#hash.digest('hex'), head: Buffer.concat(this.#head) };
  }
}

/** `chunk` as a Buffer (a stream may yield Uint8Array or, when misconfigured, strings). */
export function asBuffer(chunk: Buffer | Uint8Array | string): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}
