import {
  CheckConstraintViolationException,
  DeadlockException,
  ForeignKeyConstraintViolationException,
  NotNullConstraintViolationException,
  OptimisticLockError,
  UniqueConstraintViolationException,
  type EntitySchema,
} from '@mikro-orm/core';
import pRetry from 'p-retry';
import {
  e164,
  fieldSchema,
  formatAmount,
  isBlankText,
  pascalCase,
  screamingCase,
  snakeCase,
  timeFields,
  valuesMessage,
  type FieldSpec,
  type RecordDeclaration,
  type ValuesOf,
} from '@crm/contracts';
import { hasAnyRole, requireContext, type RequestContext } from '../context.ts';
import { DomainError, notFound, versionMismatch, type FieldViolation } from '../errors.ts';
import { recordEvents, type PendingEvent } from '../messaging/event.ts';
import { decodeListCursor, encodeListCursor, invalidCursor, keysetPageById, pageSize } from '../persistence/cursor.ts';
import { quoteIdent, requestEntityManager, type EntityManager, type Orm } from '../persistence/database.ts';
import { isUuid, newId } from '../persistence/ids.ts';
import { claimIdempotencyKey } from './idempotency.ts';
import { searchPatterns } from './search.ts';
import { recordEntityNamed, type RecordRow, type StoredRow } from './record-entity.ts';
import { RecordReader } from './record-reader.ts';

type Fields = Record<string, FieldSpec>;

/**
 * Attempts of a write transaction that Postgres aborted as a deadlock victim or a serialization
 * failure (SQLSTATE 40P01 / 40001, MikroORM's DeadlockException): nothing of it was stored, so it
 * is run again from the start (a new id, the key claimed anew) after a short random pause. Past
 * the last attempt the caller gets UNAVAILABLE `WRITE_CONFLICT` (503: retry), never a 500.
 */
export const WRITE_ATTEMPTS = 3;

/**
 * What `beforeWrite` sees: the values after the write, which fields change, the stored row
 * (updates only). A hook may change `values` (e.g. add tags by rule): the kit diffs again after the
 * hooks, so such changes are stored and reported in the `updated` event like the caller's own.
 */
export interface WriteContext<F extends Fields> {
  em: EntityManager;
  ctx: RequestContext;
  values: ValuesOf<F>;
  changed: ReadonlySet<keyof F & string>;
  existing: RecordRow<F> | undefined;
  /**
   * Adds an event of kind `kind` (a key of the declaration's `events`, e.g. `status_changed`:
   * subject `crm.<domain>.<name>.<kind>`, message `crm.events.v1.<Name><Kind>`) to the write's
   * transaction, after the `created`/`updated` event. `aggregateId` defaults to the record's id
   * (another record of the same aggregate may be named, e.g. the contact that stopped being primary).
   * `message` may be a function of the stored row, called after the flush (final version and times).
   */
  emit(kind: string, message: object | ((row: RecordRow<F>) => object), aggregateId?: string): void;
}

/** A record's real rules, as hooks. Throw {@link DomainError}s; everything conventional is the kit's. */
export interface RecordHooks<F extends Fields> {
  /** Cross-field and cross-record rules: after normalisation and reference checks, before the change is stored. */
  beforeWrite?(write: WriteContext<F>): Promise<void> | void;
  /** Guards a delete (e.g. refuse while children exist). */
  beforeDelete?(del: { em: EntityManager; ctx: RequestContext; row: RecordRow<F> }): Promise<void> | void;
  /**
   * Turns a list's `customFields` conditions (key → text) into JSON containment conditions on a
   * json field (`{ key: 'customFields', value: { size: 'xl' } }` → `custom_fields @> …`), after
   * checking them (throw INVALID_ARGUMENT naming `cf.<key>`). Without it such a list is refused.
   */
  listConditions?(list: { em: EntityManager; ctx: RequestContext; customFields: Readonly<Record<string, string>> }): Promise<{ key: string; value: object }[]>;
}

/**
 * A list request: paging, `query` over the `search` fields, exact-match `filters` on `filter`
 * fields (empty = none), and the kit's further conditions, each optional: `sort` (a sort name of
 * the declaration; `desc`), `tags` (any, or all with `tagsMatchAll`),
 * `customFields` (key → text, turned into conditions by the `listConditions` hook), `ranges`
 * (timestamp field or createdAt/updatedAt → after inclusive / before exclusive) and
 * `addressParts` (`address.city` → value, case-insensitive, for address fields with `filter`).
 */
export interface RecordListQuery {
  pageSize?: number | undefined;
  cursor?: string | undefined;
  query?: string | undefined;
  filters?: Record<string, unknown>;
  sort?: { name: string; desc: boolean } | undefined;
  tags?: readonly string[] | undefined;
  tagsMatchAll?: boolean | undefined;
  customFields?: Readonly<Record<string, string>> | undefined;
  ranges?: Readonly<Record<string, { after?: Date | undefined; before?: Date | undefined }>> | undefined;
  addressParts?: Readonly<Record<string, string>> | undefined;
}

/** Field values as the caller sent them (null = clear, or the default on create). */
export type RecordInput<F extends Fields> = { [K in keyof F]?: unknown };

/**
 * Write access (architecture "Tenancy and identity"): crm-admin and crm-manager write every record
 * of the organization; crm-rep only what they own (or create for themselves); crm-viewer nothing.
 * Throws PERMISSION_DENIED (`NOT_ALLOWED`).
 */
export function assertCanWrite(ctx: RequestContext, ownerId: string | undefined): void {
  if (hasAnyRole(ctx, 'crm-admin', 'crm-manager')) return;
  if (hasAnyRole(ctx, 'crm-rep') && ownerId === ctx.userId) return;
  throw new DomainError('permission_denied', 'NOT_ALLOWED', hasAnyRole(ctx, 'crm-rep') ? 'reps may only change records they own' : 'read-only role');
}

/**
 * A record's own write roles (`writeRoles` of its declaration, e.g. crm-admin only for
 * configuration): the caller must hold one. Throws PERMISSION_DENIED (`NOT_ALLOWED`); records
 * without `writeRoles` pass (ownership is then {@link assertCanWrite}'s).
 */
export function assertWriteRole(record: Pick<RecordDeclaration, 'name' | 'writeRoles'>, ctx: RequestContext): void {
  if (!record.writeRoles || hasAnyRole(ctx, ...record.writeRoles)) return;
  throw new DomainError('permission_denied', 'NOT_ALLOWED', `changing ${record.name} records requires one of the roles ${record.writeRoles.join(', ')}`);
}

/**
 * The five use cases of one aggregate, derived from its declaration. Every write runs in one
 * transaction on a tenant-scoped entity manager and stores its event in the outbox in that
 * transaction (events carry `ce-source` `/crm/<domain>-svc`). An update goes: load → version check
 * → ownership → normalise the masked fields only (a tightened rule never blocks an unrelated
 * change) → reference checks → hooks → diff → assign → `updated` event with each changed field's
 * old and new value (none when nothing changed). Constraint violations become domain errors naming
 * the field ({@link constraintError}), never a 500.
 */
export class RecordService<F extends Fields> {
  readonly record: RecordDeclaration<unknown, F>;
  readonly #orm: Orm;
  readonly #entity: EntitySchema<StoredRow>;
  readonly #hooks: RecordHooks<F>;
  readonly #keys: (keyof F & string)[];
  readonly #owners: (keyof F & string)[];
  readonly #searched: (keyof F & string)[];
  /** The lean read path (record-reader.ts); undefined when the entity has something it does not read. */
  readonly #reader: RecordReader | undefined;
  /** Whether lists go through the reader (every `filter` and `search` field is one plain column). */
  readonly #leanLists: boolean;

  constructor(orm: Orm, record: RecordDeclaration<unknown, F>, entity: EntitySchema<StoredRow>, options: { hooks?: RecordHooks<F> } = {}) {
    this.record = record;
    this.#orm = orm;
    this.#entity = entity;
    this.#hooks = options.hooks ?? {};
    this.#keys = Object.keys(record.fields);
    this.#owners = this.#keys.filter((k) => record.fields[k]?.kind === 'owner');
    this.#searched = this.#keys.filter((k) => record.fields[k]?.search);
    this.#reader = RecordReader.of(orm, entity, record.softDelete);
    this.#leanLists =
      this.#reader?.canQuery([...this.#keys.filter((k) => record.fields[k]?.filter && record.fields[k]?.kind !== 'address'), ...this.#searched]) ?? false;
  }

  /** Creates a record (owner defaults to the caller). Errors: 400, 403, 409, 422. */
  async create(input: RecordInput<F>): Promise<RecordRow<F>> {
    const ctx = requireContext();
    assertWriteRole(this.record, ctx);
    const values = this.#normalise(input, this.#keys, undefined, ctx);
    for (const key of this.#owners) assertCanWrite(ctx, String(values[key]));
    return this.#write(async (em) => {
      const id = newId();
      const earlier = await claimIdempotencyKey(em, ctx, { [this.record.name]: values }, id);
      if (earlier) return { result: await this.#load(em, earlier, { filters: { live: false } }), events: () => [] };
      await this.#checkReferences(em, values, this.#keys);
      const extra = this.#extraEvents(id);
      await this.#hooks.beforeWrite?.({ em, ctx, values, changed: new Set(this.#keys), existing: undefined, emit: extra.emit });
      const now = new Date();
      const system = { id, organizationId: ctx.organizationId, createdAt: now, updatedAt: now, createdBy: ctx.userId, version: 1 };
      const data = { ...values, ...system, ...(this.record.softDelete ? { deletedAt: null } : {}) };
      // the lean path: one insert statement, no unit of work (about a quarter of a create's CPU)
      const row = (this.#reader ? await this.#reader.insert(em, data) : em.create(this.#entity, data)) as RecordRow<F>;
      return { result: row, events: () => [this.#event('created', { [this.record.name]: this.toMessage(row) }, row.id), ...extra.events(row)] };
    });
  }

  /**
   * The live record `id` of the caller's organization; NOT_FOUND otherwise (also for another
   * tenant's id). One statement on the lean read path (record-reader.ts), scoped by the caller's
   * organization explicitly.
   */
  async get(id: string): Promise<RecordRow<F>> {
    const ctx = requireContext();
    if (!this.#reader) return this.#load(requestEntityManager(this.#orm), id);
    const row = isUuid(id) ? await this.#reader.get(ctx.organizationId, id) : undefined;
    if (!row) throw notFound(this.record.name, id);
    return row as RecordRow<F>;
  }

  /**
   * One page of live records, keyset-paged: ordered by id (UUIDv7: creation order) unless `sort`
   * names one of the record's sorts (then by its fields and id), filtered by the query's
   * conditions (see {@link RecordListQuery}). Errors: INVALID_PAGE_SIZE, INVALID_CURSOR (also a
   * cursor of another sort), INVALID_ARGUMENT naming `sort`, a range or a custom field.
   */
  async list(q: RecordListQuery): Promise<{ items: RecordRow<F>[]; nextCursor: string | undefined }> {
    const ctx = requireContext();
    const none = { items: [], nextCursor: undefined };
    const filters: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(q.filters ?? {})) {
      const spec = this.record.fields[key];
      if (!spec?.filter || value === null || value === undefined || value === '') continue;
      // a reference filter that is not a uuid matches nothing (and must not reach Postgres as one)
      if (spec.kind === 'ref' && !isUuid(String(value))) return none;
      filters[key] = value;
    }
    // the gateway refuses these already; other gRPC callers get the same 400, never a Postgres error
    if (q.query && (q.query.includes('\u0000') || !q.query.isWellFormed())) throw badList('q', 'must not contain NUL characters or unpaired surrogates');
    const patterns = q.query && this.#searched.length ? searchPatterns(q.query) : undefined;
    const tags = (q.tags ?? []).filter((t) => t !== '');
    if (tags.some((t) => !isUuid(t))) return none; // no record carries a tag id that is not a uuid
    const sort = q.sort ? this.#sortOf(q.sort.name) : undefined;
    const ranges = Object.entries(q.ranges ?? {}).map(([key, range]) => {
      if (!timeFields(this.record).includes(key)) throw badList(key, 'not a time that lists can be limited by');
      return { key, ...range };
    });
    const addressParts = Object.entries(q.addressParts ?? {}).map(([path, value]) => {
      const [key = '', part = ''] = path.split('.');
      if (this.record.fields[key]?.kind !== 'address' || !this.record.fields[key]?.filter || !['city', 'country'].includes(part))
        throw badList(path, 'not an address part lists can be filtered by');
      return { key, part, value };
    });
    const em = requestEntityManager(this.#orm);
    const customFields = Object.keys(q.customFields ?? {}).length ? q.customFields! : undefined;
    if (customFields && !this.#hooks.listConditions) throw badList('cf', `${this.record.plural} have no custom fields`);
    const contains = customFields ? await this.#hooks.listConditions!({ em, ctx, customFields }) : [];
    const reader = this.#leanLists ? this.#reader : undefined;
    if (reader) {
      const limit = pageSize(q.pageSize);
      const cursor = q.cursor ? decodeListCursor(q.cursor, sort?.name ?? 'id', sort?.keys.length ?? 0) : undefined;
      if (cursor && sort && !cursor.values.every((v, i) => this.#sortValueFits(sort.keys[i]!, v))) throw invalidCursor();
      const rows = await reader.list(ctx.organizationId, {
        filters,
        patterns,
        searched: this.#searched,
        tags: tags.length ? { ids: tags, all: q.tagsMatchAll === true } : undefined,
        contains,
        ranges,
        addressParts,
        sort: sort ? { keys: sort.keys, desc: q.sort!.desc } : undefined,
        after: cursor,
        limit: limit + 1,
      });
      const more = rows.length > limit;
      const page = more ? rows.slice(0, limit) : rows;
      const last = page[page.length - 1];
      return {
        items: page.map((r) => r.row) as RecordRow<F>[],
        nextCursor: more && last ? encodeListCursor(sort?.name ?? 'id', last.sortValues, last.row.id) : undefined,
      };
    }
    if (sort || tags.length || contains.length || ranges.length || addressParts.length) {
      throw new Error(`${this.record.name}: sorts and further list conditions need the lean reader (record-reader.ts)`);
    }
    const where: Record<string, unknown> = { ...filters };
    // without the lean reader (an entity it cannot read): plain ILIKE per field, not accent-insensitive
    if (patterns) where['$or'] = patterns.flatMap((p) => this.#searched.map((k) => ({ [k]: { $ilike: p } })));
    const page = await keysetPageById(q, (after, limit) =>
      em.find(this.#entity, { ...where, ...(after ? { id: { $gt: after } } : {}) }, { orderBy: { id: 'asc' }, limit }),
    );
    return { items: page.items as RecordRow<F>[], nextCursor: page.nextCursor };
  }

  /**
   * Whether a cursor's sort value can be one Postgres printed for sort key `key` (record-reader.ts
   * `#sortExpression`): a timestamp (`2026-11-22 00:19:48.183+00`, or `-infinity` for none) or
   * text without NUL. A forged cursor is INVALID_CURSOR, never a cast error in Postgres.
   */
  #sortValueFits(key: string, value: string): boolean {
    const timestamp = timeFields(this.record).includes(key);
    if (timestamp) return value === '-infinity' || /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2}){0,2}$/.test(value);
    return !value.includes('\u0000') && value.isWellFormed();
  }

  /** The fields of sort `name` (one of the declaration's sorts); 400 naming `sort` otherwise. */
  #sortOf(name: string): { name: string; keys: readonly string[] } {
    const sorts = this.record.sorts ?? {};
    const keys = Object.hasOwn(sorts, name) ? sorts[name] : undefined;
    if (!keys)
      throw badList(
        'sort',
        Object.keys(this.record.sorts ?? {}).length ? `one of ${Object.keys(this.record.sorts ?? {}).join(', ')}` : 'this list has one order',
      );
    return { name, keys };
  }

  /** Writes the fields in `mask` (others untouched; null clears). A stale `expectedVersion` is VERSION_MISMATCH (412). */
  async update(id: string, input: RecordInput<F>, mask: readonly (keyof F & string)[], expectedVersion?: number): Promise<RecordRow<F>> {
    return this.updateWith(id, () => ({ input, mask }), expectedVersion);
  }

  /**
   * {@link update} with the change computed under the row lock: `change` gets the stored values
   * as of the lock (the last committed version, so a concurrent writer's change is in them) and
   * returns the fields to write, or undefined to write nothing (no event, the row returned as
   * stored). For read-modify-write changes such as adding one tag to `tags`, which a read followed
   * by {@link update} would lose to a concurrent writer. The version check and ownership come
   * first. `change` may run again when the transaction is retried: keep it free of effects.
   */
  async updateWith(
    id: string,
    change: (current: ValuesOf<F>) => { input: RecordInput<F>; mask: readonly (keyof F & string)[] } | undefined,
    expectedVersion?: number,
  ): Promise<RecordRow<F>> {
    const ctx = requireContext();
    assertWriteRole(this.record, ctx);
    return this.#write(async (em) => {
      const row = await this.#loadForWrite(em, id, expectedVersion, ctx);
      const before = this.toValues(row);
      const next = change(before);
      if (!next) return { result: row, events: () => [] };
      const values = this.#normalise(next.input, next.mask, before, ctx);
      const diff = () => new Set(this.#keys.filter((k) => JSON.stringify(jsonValue(before[k])) !== JSON.stringify(jsonValue(values[k]))));
      const requested = diff();
      for (const key of this.#owners) if (requested.has(key)) assertCanWrite(ctx, String(values[key]));
      await this.#checkReferences(em, values, [...requested]);
      const extra = this.#extraEvents(row.id);
      await this.#hooks.beforeWrite?.({ em, ctx, values, changed: requested, existing: row, emit: extra.emit });
      // hooks may have changed values (rules): what is stored and reported is the final difference
      const changed = diff();
      if (changed.size === 0) return { result: row, events: () => extra.events(row) };
      em.assign(row as StoredRow, { ...Object.fromEntries([...changed].map((k) => [k, values[k]])), updatedAt: new Date() });
      const changes = [...changed].map((k) => ({ field: snakeCase(k), oldValue: jsonValue(before[k]), newValue: jsonValue(values[k]) }));
      return {
        result: row,
        events: () => [
          this.#event('updated', { [this.record.name]: this.toMessage(row), changedFields: changes.map((c) => c.field), changes }, row.id),
          ...extra.events(row),
        ],
      };
    });
  }

  /** Deletes (soft, for soft-deleted records) after the version check, ownership and `beforeDelete`. */
  async delete(id: string, expectedVersion?: number): Promise<void> {
    const ctx = requireContext();
    assertWriteRole(this.record, ctx);
    await this.#write(async (em) => {
      const row = await this.#loadForWrite(em, id, expectedVersion, ctx, 'delete');
      await this.#hooks.beforeDelete?.({ em, ctx, row });
      if (this.record.softDelete) em.assign(row as StoredRow, { deletedAt: new Date(), updatedAt: new Date() });
      else em.remove(row);
      return { result: undefined, events: () => [this.#event('deleted', { [`${this.record.name}Id`]: row.id }, row.id)] };
    });
  }

  /** A stored row's field values in the one value shape (money formatted, an empty address null). */
  toValues(row: RecordRow<F>): ValuesOf<F> {
    const out: Record<string, unknown> = {};
    for (const key of this.#keys) out[key] = storedValue(this.record.fields[key]!, row[key]);
    return out as ValuesOf<F>;
  }

  /** The proto message of a row: `{ id, …fields, audit }`. */
  toMessage(row: RecordRow<F>): Record<string, unknown> {
    const audit = { createTime: row.createdAt, updateTime: row.updatedAt, createdBy: row.createdBy, version: String(row.version) };
    return { id: row.id, ...valuesMessage(this.record, this.toValues(row)), audit };
  }

  async #load(em: EntityManager, id: string, options: { filters?: { live: false } } = {}): Promise<RecordRow<F>> {
    const row = isUuid(id) ? await em.findOne(this.#entity, { id }, options) : null;
    if (!row) throw notFound(this.record.name, id);
    return row as RecordRow<F>;
  }

  /**
   * Locks the row for this transaction (concurrent writers of it queue), then loads it — the load
   * comes after the wait, so it sees the last committed version — and checks the version and
   * ownership. The lock is `for no key update`, the one Postgres' own UPDATE of non-key columns
   * takes: unlike `for update` it does not conflict with the `for key share` lock a foreign-key
   * check takes on the referenced row. With `for update`, two writers each pointing its locked row
   * at the other's (company A's parent := B while B's parent := A) deadlocked — one was aborted
   * (40P01) and answered 500 — and every insert referencing a row waited for that row's writer.
   * A hard delete takes `for update`: a DELETE needs that lock, and upgrading a weaker one deadlocks.
   */
  async #loadForWrite(
    em: EntityManager,
    id: string,
    expectedVersion: number | undefined,
    ctx: RequestContext,
    purpose: 'update' | 'delete' = 'update',
  ): Promise<RecordRow<F>> {
    if (isUuid(id)) {
      const meta = em.getMetadata().find(this.#entity);
      const table = `${quoteIdent(meta?.schema ?? String(em.config.get('schema')))}.${quoteIdent(meta?.tableName ?? snakeCase(this.record.name))}`;
      const strength = purpose === 'delete' && !this.record.softDelete ? 'update' : 'no key update';
      await em.execute(`select 1 from ${table} where id = ? and organization_id = ? for ${strength}`, [id, ctx.organizationId]);
    }
    const row = await this.#load(em, id);
    if (expectedVersion !== undefined && row.version !== expectedVersion) throw versionMismatch(this.record.name, String(expectedVersion), String(row.version));
    for (const key of this.#owners) assertCanWrite(ctx, String(row[key]));
    return row;
  }

  /**
   * Validates and normalises the fields in `keys` with the kit's rules — the schemas the gateway
   * validates with — over `base` (the stored values). An empty owner keeps the stored owner, or is
   * the caller on create. Throws INVALID_ARGUMENT listing every violation.
   */
  #normalise(input: RecordInput<F>, keys: readonly (keyof F & string)[], base: ValuesOf<F> | undefined, ctx: RequestContext): ValuesOf<F> {
    const out: Record<string, unknown> = { ...base };
    const violations: FieldViolation[] = [];
    for (const key of keys) {
      const spec = this.record.fields[key]!;
      const raw = input[key] ?? defaultOf(spec);
      if (spec.kind === 'owner' && !raw) {
        out[key] = base ? base[key] : ctx.userId;
        continue;
      }
      if (spec.kind === 'text' && spec.originalOf) continue; // output only: set below from its phone field
      const parsed = fieldSchema(spec).safeParse(raw);
      if (!parsed.success) violations.push(...parsed.error.issues.map((i) => ({ field: [key, ...i.path].join('.'), message: i.message })));
      else if (spec.kind === 'text' && spec.format === 'phone' && typeof parsed.data === 'string') out[key] = e164(parsed.data);
      else out[key] = parsed.data;
    }
    if (violations.length) throw new DomainError('invalid_argument', 'VALIDATION_FAILED', `invalid ${this.record.name}`, violations);
    // a phone field written: its original text beside it (as typed, trimmed), or null with it
    for (const [key, spec] of Object.entries(this.record.fields)) {
      if (spec.kind !== 'text' || !spec.originalOf || !keys.includes(spec.originalOf)) continue;
      const typed = input[spec.originalOf];
      out[key] = typeof typed === 'string' && typed.trim() ? typed.trim().slice(0, spec.max) : null;
    }
    return out as ValuesOf<F>;
  }

  /** Each non-null reference among `keys` must name a live record of the caller's organization: 422 `<FIELD>_NOT_FOUND` otherwise. */
  async #checkReferences(em: EntityManager, values: ValuesOf<F>, keys: readonly (keyof F & string)[]): Promise<void> {
    for (const key of keys) {
      const spec = this.record.fields[key];
      const id = values[key];
      if (spec?.kind !== 'ref' || typeof id !== 'string') continue;
      if (!isUuid(id) || (await em.count(recordEntityNamed(spec.to), { id })) === 0) {
        throw new DomainError('rule_violation', notFoundCode(key), `${key} ${id} not found`, [{ field: key, message: 'no such record' }]);
      }
    }
  }

  /** The `emit` of a write's hooks and the events it collected (encoded once the row is flushed). */
  #extraEvents(recordId: string): { emit: WriteContext<F>['emit']; events(row: RecordRow<F>): PendingEvent[] } {
    const pending: { kind: string; message: object | ((row: RecordRow<F>) => object); aggregateId: string }[] = [];
    return {
      emit: (kind, message, aggregateId = recordId) => {
        if (!this.record.events[kind]) throw new Error(`${this.record.name} declares no ${kind} event`);
        pending.push({ kind, message, aggregateId });
      },
      events: (row) => pending.map((e) => this.#event(e.kind, typeof e.message === 'function' ? e.message(row) : e.message, e.aggregateId)),
    };
  }

  #event(kind: string, message: object, aggregateId: string): PendingEvent {
    const r = this.record;
    const codec = r.events[kind];
    if (!codec) throw new Error(`${r.name} declares no ${kind} event`);
    const data = codec.encode(message).finish();
    return {
      subject: `crm.${r.domain}.${snakeCase(r.name)}.${kind}`,
      dataSchema: `crm.events.v1.${pascalCase(r.name)}${kind.split('_').map(pascalCase).join('')}`,
      aggregateId,
      data,
    };
  }

  /**
   * One transaction: the work, a flush (events carry the final version), its events into the
   * outbox. Writers lock the row first (see #loadForWrite), so concurrent changes queue instead of
   * racing; an optimistic-lock failure that still happens is VERSION_MISMATCH (412), never a 500.
   * A transaction Postgres aborts as a deadlock victim or serialization failure is run again, at
   * most {@link WRITE_ATTEMPTS} times in all (the work has no effect outside its transaction).
   */
  async #write<T>(work: (em: EntityManager) => Promise<{ result: T; events: () => PendingEvent[] }>): Promise<T> {
    const attempt = () =>
      requestEntityManager(this.#orm).transactional(async (em) => {
        const { result, events } = await work(em);
        await em.flush();
        recordEvents(em, `/crm/${this.record.domain}-svc`, events());
        return result;
      });
    try {
      return await pRetry(attempt, {
        retries: WRITE_ATTEMPTS - 1,
        minTimeout: 5,
        maxTimeout: 50,
        randomize: true,
        shouldRetry: ({ error }) => error instanceof DeadlockException,
      });
    } catch (error) {
      if (error instanceof OptimisticLockError) throw versionMismatch(this.record.name, 'the one read', 'a newer one');
      if (error instanceof DeadlockException) {
        throw new DomainError('unavailable', 'WRITE_CONFLICT', `the ${this.record.name} collided with concurrent writes ${WRITE_ATTEMPTS} times; retry`);
      }
      throw constraintError(this.record, error) ?? error;
    }
  }
}

/** INVALID_ARGUMENT for a list parameter (`sort`, a range, `cf.<key>`, an address part). */
function badList(field: string, message: string): DomainError {
  return new DomainError('invalid_argument', 'INVALID_LIST_QUERY', `${field}: ${message}`, [{ field, message }]);
}

/** How each kind of constraint violation reads, by the kit's constraint names (see recordEntity). */
const VIOLATIONS = [
  {
    type: UniqueConstraintViolationException,
    suffix: 'uq',
    kind: 'conflict',
    code: (r: RecordDeclaration, f: string) => r.fields[f]?.unique ?? 'DUPLICATE',
    message: 'already used by another record',
  },
  {
    type: ForeignKeyConstraintViolationException,
    suffix: 'fkey',
    kind: 'rule_violation',
    code: (_: RecordDeclaration, f: string) => notFoundCode(f),
    message: 'no such record',
  },
  {
    type: CheckConstraintViolationException,
    suffix: 'check',
    kind: 'rule_violation',
    code: (_: RecordDeclaration, f: string) => `${screamingCase(f)}_INVALID`,
    message: 'violates a rule',
  },
  { type: NotNullConstraintViolationException, suffix: '', kind: 'invalid_argument', code: () => 'VALIDATION_FAILED', message: 'is required' },
] as const;

/**
 * A database constraint violation as a domain error naming the field, from the kit's names:
 * unique `<table>_<column>_uq` → 409 with the field's declared code; foreign key
 * `<table>_<column>_fkey` → 422 `<FIELD>_NOT_FOUND`; check `<table>_<column>_check` → 422
 * `<FIELD>_INVALID`; not null → 400. Undefined when `error` is no constraint violation.
 */
export function constraintError(record: RecordDeclaration, error: unknown): DomainError | undefined {
  const v = VIOLATIONS.find((x) => error instanceof x.type);
  if (!v || typeof error !== 'object' || error === null) return undefined;
  // DriverException copies the pg error's own properties (constraint, column) onto itself
  const constraint = 'constraint' in error ? String(error.constraint) : '';
  const column = 'column' in error ? String(error.column) : '';
  const table = snakeCase(record.name);
  const field = Object.keys(record.fields).find((k) => column === snakeCase(k) || constraint === `${table}_${snakeCase(k)}_${v.suffix}`);
  if (!field)
    return new DomainError(v.kind, v.kind === 'conflict' ? 'DUPLICATE' : 'CONSTRAINT_VIOLATED', `${record.name} violates ${constraint || 'a constraint'}`);
  return new DomainError(v.kind, v.code(record, field), `${record.name}: ${field} ${v.message}`, [{ field, message: v.message }]);
}

/** `parentCompanyId` → `PARENT_COMPANY_NOT_FOUND`. */
function notFoundCode(field: string): string {
  return `${screamingCase(field.replace(/Id$/, ''))}_NOT_FOUND`;
}

function storedValue(spec: FieldSpec, value: unknown): unknown {
  if (value === undefined) return defaultOf(spec);
  if (spec.kind === 'money' && value) {
    const m = value as { amount: string | null; currency: string | null };
    return m.amount === null || m.currency === null ? null : { amount: formatAmount(m.amount), currency: m.currency };
  }
  if (spec.kind === 'address' && value) return Object.values(value).some((p) => p !== null && p !== undefined) ? { ...value } : null;
  return value;
}

function defaultOf(spec: FieldSpec): unknown {
  return spec.kind === 'bool' ? (spec.default ?? false) : spec.kind === 'tags' || spec.kind === 'strings' ? [] : isBlankText(spec) ? '' : null;
}

/** A value as JSON (dates as ISO 8601): for change detection and `FieldChange`. */
function jsonValue(value: unknown): unknown {
  return value instanceof Date ? value.toISOString() : (value ?? null);
}
