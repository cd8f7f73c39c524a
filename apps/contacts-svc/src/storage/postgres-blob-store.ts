import { defineEntity, p } from '@mikro-orm/core';
import type pg from 'pg';
import { isUuid, newId, type Orm } from '@crm/platform';
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

/** `contacts.blob_chunk`: the content of a Postgres-stored blob, in order of `seq` (0, 1, …), each ≥ {@link CHUNK_BYTES} but the last. */
export const BlobChunkEntity = defineEntity({
  name: 'BlobChunk',
  tableName: 'blob_chunk',
  properties: {
    blobKey: p.uuid().primary(),
    seq: p.integer().primary(),
    organizationId: p.uuid(),
    data: p.blob(),
  },
});

/** Bytes per stored chunk row (coalesced from the ≤ 64 KiB messages of an upload; TOAST stores them out of line). */
export const CHUNK_BYTES = 256 * 1024;
/** Chunk rows read per query of a download (≈ 1 MiB held at a time). */
const CHUNKS_PER_READ = 4;
/** Blobs removed per statement of a sweep. */
const SWEEP_BATCH = 100;

/**
 * The default {@link BlobStore}: content in `contacts.blob_chunk` rows of ≈ 256 KiB, described by
 * its `contacts.blob` row. Each chunk is its own short statement, so an upload never holds a
 * transaction or a pool connection while it waits for the client; a failed upload deletes what it
 * wrote, and what a crashed process left is removed by {@link sweep}. Reads go through the ORM's
 * pg pool, one query per ≈ 1 MiB.
 */
export class PostgresBlobStore implements BlobStore {
  readonly #orm: Orm;
  #pool: Promise<pg.Pool> | undefined;

  constructor(orm: Orm) {
    this.#orm = orm;
  }

  async put(organizationId: string, content: AsyncIterable<Buffer>, options: PutOptions): Promise<StoredBlob> {
    const pool = await this.#native();
    const key = newId();
    const meter = new BlobMeter(options.maxBytes);
    await insertBlobRow(pool, 'postgres', organizationId, key);
    try {
      let seq = 0;
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      const flush = async (): Promise<void> => {
        const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
        await pool.query('insert into contacts.blob_chunk (blob_key, seq, organization_id, data) values ($1, $2, $3, $4)', [key, seq++, organizationId, data]);
      };
      for await (const part of content) {
        const chunk = asBuffer(part);
        if (chunk.length === 0) continue;
        meter.add(chunk);
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= CHUNK_BYTES) await flush();
      }
      if (pendingBytes > 0) await flush();
      const blob = meter.result(key);
      await completeBlobRow(pool, blob, seq, options.pending === true);
      return blob;
    } catch (error) {
      // nothing stays stored: the blob is incomplete, so nobody can have claimed it; if this
      // cleanup fails too, the sweep removes it later
      await this.#remove(pool, organizationId, key, false).catch(() => undefined);
      throw error;
    }
  }

  async *get(organizationId: string, key: string): AsyncGenerator<Buffer> {
    if (!isUuid(key)) throw blobNotFound();
    const pool = await this.#native();
    const { rows } = await pool.query<{ chunk_count: number }>(
      `select chunk_count from contacts.blob where key = $1 and organization_id = $2 and store = 'postgres' and complete`,
      [key, organizationId],
    );
    const count = rows[0]?.chunk_count;
    if (count === undefined) throw blobNotFound();
    for (let from = 0; from < count; from += CHUNKS_PER_READ) {
      const chunks = await pool.query<{ seq: number; data: Buffer }>(
        'select seq, data from contacts.blob_chunk where blob_key = $1 and organization_id = $2 and seq >= $3 and seq < $4 order by seq',
        [key, organizationId, from, Math.min(from + CHUNKS_PER_READ, count)],
      );
      // deleted while being read: the stream must not end as if complete
      if (chunks.rows.length !== Math.min(CHUNKS_PER_READ, count - from)) throw blobNotFound();
      for (const chunk of chunks.rows) yield chunk.data;
    }
  }

  async delete(organizationId: string, key: string): Promise<void> {
    if (!isUuid(key)) return;
    await this.#remove(await this.#native(), organizationId, key, false);
  }

  async discard(organizationId: string, key: string): Promise<void> {
    if (!isUuid(key)) return;
    await this.#remove(await this.#native(), organizationId, key, true);
  }

  async sweep(options: { now?: Date } = {}): Promise<number> {
    const pool = await this.#native();
    let removed = 0;
    while (removed < SWEEP_MAX) {
      // one statement: the rows (skipping those another replica or a claim holds) and their chunks go together
      const { rows } = await pool.query<{ n: string }>(
        `with stale as (
           delete from contacts.blob where key in (
             select b.key from contacts.blob b where ${SWEEPABLE} order by b.created_at limit $3 for update skip locked
           ) returning key
         ), chunks as (
           delete from contacts.blob_chunk where blob_key in (select key from stale)
         )
         select count(*) as n from stale`,
        ['postgres', options.now ?? null, SWEEP_BATCH],
      );
      const n = Number(rows[0]?.n ?? 0);
      removed += n;
      if (n < SWEEP_BATCH) break;
    }
    return removed;
  }

  /**
   * Deletes blob `key` of the organization and its chunks in one transaction; with `unclaimedOnly`
   * only when unclaimed — the delete waits for the row lock of a claim in flight and then
   * re-checks the row, so a committed claim keeps the blob.
   */
  async #remove(pool: pg.Pool, organizationId: string, key: string, unclaimedOnly: boolean): Promise<void> {
    const client = await pool.connect();
    try {
      await client.query('begin');
      const { rowCount } = await client.query(
        `delete from contacts.blob where key = $1 and organization_id = $2 and store = 'postgres'${unclaimedOnly ? ' and claimed_at is null' : ''}`,
        [key, organizationId],
      );
      if (rowCount) await client.query('delete from contacts.blob_chunk where blob_key = $1 and organization_id = $2', [key, organizationId]);
      await client.query('commit');
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  #native(): Promise<pg.Pool> {
    this.#pool ??= nativePool(this.#orm);
    return this.#pool;
  }
}
