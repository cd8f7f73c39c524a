import { DeadlockException, UniqueConstraintViolationException, type EntitySchema } from '@mikro-orm/core';
import pRetry from 'p-retry';
import {
  companyRecord,
  contactRecord,
  mergesEventsV1,
  segmentRecord,
  segmentsEventsV1,
  snakeCase,
  toProto,
  type FieldSpec,
  type RecordDeclaration,
} from '@crm/contracts';
import {
  claimIdempotencyKey,
  DomainError,
  hasAnyRole,
  isUuid,
  newId,
  notFound,
  quoteIdent,
  recordEvents,
  RecordService,
  requestEntityManager,
  requireContext,
  versionMismatch,
  WRITE_ATTEMPTS,
  type EntityManager,
  type FieldViolation,
  type Orm,
  type PendingEvent,
  type RecordRow,
  type StoredRow,
} from '@crm/platform';
import { CompanyEntity } from '../company/company.service.ts';
import { ContactEntity } from '../contact/contact.service.ts';
import { repointDocuments, restoreDocumentParents, type DocumentMove } from '../document/document.service.ts';
import { pgArray } from '../duplicate/duplicate.candidates.ts';
import type { DuplicateObject } from '../duplicate/duplicate.rules.ts';
import {
  canonical,
  changedColumns,
  checkMergeRequest,
  fieldSources,
  restoreColumns,
  UNDO_DAYS,
  unionCustomFields,
  unionTags,
  type MergeRequest,
  type Row,
} from './merge.rules.ts';

/**
 * Merges of companies and of contacts, undoable for {@link UNDO_DAYS} days.
 *
 * **Merge** (one transaction; crm-admin or crm-manager): up to 10 (merge.rules.ts `MAX_MERGED`) live records of
 * the caller's organization go into a live survivor.
 * - The survivor takes, field by field, the value of the record `fieldChoices` names; without a
 *   choice its own value, or — when it has none — the first merged record's (in `mergedIds`
 *   order) that has one. A phone's text as typed goes with its number. Tags are unioned; custom
 *   fields are unioned key by key (the survivor's first) unless chosen; `doNotCall` and
 *   `emailOptOut` are true if any record's is (a merge never loses an opt-out) unless chosen.
 *   Contacts: `isPrimary` follows the company — the survivor is the primary contact of its
 *   resulting company when it was, or a merged contact of that company was. A reference to one of
 *   the merged records or to itself (`referredById`, `parentCompanyId`) falls back to the
 *   survivor's own, else none.
 * - Static segment memberships of merged records are added to the survivor; their documents move
 *   to it (document.service.ts `repointDocuments`).
 * - Companies: contacts of merged companies move to the survivor (as non-primary: the survivor's
 *   primary contact stays), subsidiaries of merged companies are re-parented to it. A merged
 *   company above the survivor in the hierarchy is refused (422 `MERGE_INTO_SUBSIDIARY`: merge
 *   into the upper company instead), and so is a result with a cycle (422 `COMPANY_HIERARCHY_CYCLE`).
 * - Contacts: contacts referred by a merged contact are referred by the survivor.
 * - Merged records are soft-deleted with `mergedIntoId` = the survivor: gone from every list,
 *   search, segment and the duplicate lists; their GET is 404 with where they went
 *   ({@link MergeService.mergedRecord}).
 * - Events: the survivor's `updated` (when its fields changed), one `updated` per moved record,
 *   `crm.contacts.<object>.merged { survivorId, mergedIds, mergeId }`, `member_added` per new
 *   membership. Merged records get no `deleted` event: consumers treat deletes as final, and an
 *   undo brings them back.
 * - Checks: If-Match on the survivor (412), survivor and merged records live records of the
 *   organization (404 naming the id — another tenant's too; 409 `<OBJECT>_ALREADY_MERGED` for a
 *   record merged before), the request's shape (400, see merge.rules.ts `checkMergeRequest`).
 *
 * **Snapshot.** The merge row keeps every row it touched as `to_jsonb` gave it, numbers as their
 * exact text (a `numeric(19,4)` amount never passes through a JS number; rows are written back
 * with `jsonb_populate_record`, which reads the text into the column's type): the survivor
 * before and after, the merged records before, the changed columns of each moved record before and
 * after, and the memberships it added.
 *
 * **Undo** (once, within {@link UNDO_DAYS} days, else 409 `MERGE_ALREADY_UNDONE` /
 * `MERGE_UNDO_EXPIRED`; the survivor must still be live, else 409 `MERGE_SURVIVOR_GONE`): merged
 * records are restored exactly — every column, their version and times included (nobody could
 * read or change them meanwhile, and no event carried their interim state). The survivor's and the
 * moved records' fields the merge changed are restored where they still hold the merge's value
 * (documents go back to their record unless deleted or moved on since: a conflict on the document);
 * a field changed since keeps its later value and is reported as a conflict (tags: the tags the
 * merge added are removed, later ones stay). These records' versions move forward and their
 * `updatedAt` is the undo's time: the merge's `updated` events carried the versions it made, and
 * consumers apply an event only when its version is newer (a version going back would make the
 * undo's events invisible to them). Memberships the merge added are removed. Custom fields are
 * restored key by key (a key changed since is a conflict `customFields.<key>`; the others are
 * restored), tags as a set. A contact (merged or the survivor) that was its company's primary
 * contact comes back as non-primary when another contact became primary since (a conflict on
 * `isPrimary`). A restored reference — `companyId`, `referredById`, `parentCompanyId` of the
 * survivor or a merged record — to a record deleted or merged since is cleared (a conflict on that
 * field; a cleared `companyId` clears `isPrimary`), and so is a restored `parentCompanyId` that now
 * closes a hierarchy cycle (e.g. child → B → Z → child when Z was put under B's former subsidiary
 * meanwhile): the undo is not refused for what changed since, it reports it — the caller sees
 * each cleared reference in `conflicts`, and the record's `updated` event says it. A unique value
 * (e-mail, domain, external id) taken by another record since fails the undo with 409
 * `MERGE_UNDO_CONFLICT` naming it — nothing changes.
 *
 * **Concurrency.** Locks are taken in one order: the records' rows (id order), then the
 * organization's hierarchy lock (companies, as company.service.ts) or the primary-contact locks of
 * the companies involved (contacts, as contact.service.ts `demotePrimary`), then moved records'
 * rows. A transaction Postgres still aborts as a deadlock victim is retried (3 attempts in all),
 * then answered 503 `WRITE_CONFLICT`; never a 500. Merge and undo are retry-safe with an
 * Idempotency-Key (the gateway replays the first answer).
 * Events: `updated` for the survivor and moved records that changed, `member_removed`,
 * `crm.contacts.<object>.unmerged { survivorId, restoredIds, mergeId, conflicts }`.
 */

type AnyFields = Record<string, FieldSpec>;

/** What a merge of one object needs: its declaration, entity, table and record service (proto mapping). */
interface ObjectSpec {
  object: DuplicateObject;
  record: RecordDeclaration<unknown, AnyFields>;
  entity: EntitySchema<StoredRow>;
  table: string;
  service: RecordService<AnyFields>;
  /** Field → its columns (a phone with its text as typed; money and address parts). */
  columns: Map<string, string[]>;
  /** Every field column (the row without system columns). */
  fieldColumns: string[];
  /** Fields `fieldChoices` may name. */
  choosable: string[];
}

/** A moved record: another record whose reference the merge repointed. */
interface MovedRow {
  object: DuplicateObject;
  id: string;
  /** The changed columns before and after the merge. */
  before: Row;
  after: Row;
}

/** What the merge row keeps for its undo. */
export interface MergeSnapshot {
  survivor: { before: Row; after: Row };
  merged: Row[];
  moved: MovedRow[];
  /** Segments the survivor was added to (rows created at the merge's time). */
  memberships: string[];
  /** Documents of merged records moved to the survivor (document.service.ts `repointDocuments`). */
  documents?: DocumentMove[];
}

/** A field the undo kept at its later value. */
export interface MergeConflictView {
  recordId: string;
  field: string;
}

/** A merge as served. */
export interface MergeView {
  id: string;
  object: DuplicateObject;
  survivorId: string;
  mergedIds: string[];
  fieldChoices: Record<string, string>;
  createdAt: Date;
  createdBy: string;
  undoDeadline: Date;
  undoneAt: Date | null;
  undoneBy: string | null;
  conflicts: MergeConflictView[];
  movedIds: string[];
}

interface MergeRowRaw {
  id: string;
  object: DuplicateObject;
  survivor_id: string;
  merged_ids: string[];
  field_choices: Record<string, string>;
  snapshot: MergeSnapshot;
  created_at: Date;
  created_by: string;
  undone_at: Date | null;
  undone_by: string | null;
  undo_conflicts: MergeConflictView[] | null;
}

const SOURCE = '/crm/contacts-svc';
/** Columns never written by a restore (the row's identity). */
const IDENTITY = ['id', 'organization_id'];
const DAY_MS = 86_400_000;

/** Merges and their undo; see the module comment. */
export class MergeService {
  readonly #orm: Orm;
  readonly #specs: Record<DuplicateObject, ObjectSpec>;

  constructor(orm: Orm) {
    this.#orm = orm;
    this.#specs = { company: objectSpec(orm, 'company'), contact: objectSpec(orm, 'contact') };
  }

  /** The record service (proto mapping) of `object`, e.g. for the survivor in a response. */
  service(object: DuplicateObject): RecordService<AnyFields> {
    return this.#specs[object].service;
  }

  /**
   * Merges `mergedIds` into `survivorId` (see the module comment) and returns the merge with the
   * survivor as it is now. `expectedVersion`: the survivor's If-Match. Retry-safe with the
   * request's Idempotency-Key (a retry answers the first merge).
   */
  async merge(
    object: DuplicateObject,
    input: { survivorId: string; mergedIds: readonly string[]; fieldChoices: Readonly<Record<string, string>> },
    expectedVersion?: number,
  ): Promise<{ merge: MergeView; survivor: RecordRow<AnyFields> }> {
    const ctx = requireContext();
    assertMayMerge();
    const spec = this.#specs[object];
    if (!isUuid(input.survivorId)) throw notFound(object, input.survivorId);
    const { request, violations } = checkMergeRequest(input, spec.choosable);
    if (violations.length) throw new DomainError('invalid_argument', 'VALIDATION_FAILED', `invalid ${object} merge`, violations);
    const mergeId = newId();
    const id = await this.#transaction(spec, 'merge', async (em) => {
      const earlier = await claimIdempotencyKey(em, ctx, { merge: { object, ...request, expectedVersion } }, mergeId);
      if (earlier) return { id: earlier, events: [] };
      return { id: mergeId, events: await this.#merge(em, spec, request, mergeId, expectedVersion) };
    });
    const merge = await this.get(id);
    return { merge, survivor: await spec.service.get(merge.survivorId) };
  }

  /** Undoes merge `mergeId` (see the module comment) and returns it with what conflicted. */
  async undo(mergeId: string): Promise<MergeView> {
    assertMayMerge();
    const ctx = requireContext();
    if (!isUuid(mergeId)) throw notFound('merge', mergeId);
    const [head] = await requestEntityManager(this.#orm).execute<{ object: DuplicateObject }[]>(
      'select object from contacts.record_merge where id = ? and organization_id = ?',
      [mergeId, ctx.organizationId],
    );
    if (!head) throw notFound('merge', mergeId);
    const spec = this.#specs[head.object];
    await this.#transaction(spec, 'undo', async (em) => ({ id: mergeId, events: await this.#undo(em, spec, mergeId) }));
    return this.get(mergeId);
  }

  /** Merge `id` of the caller's organization; NOT_FOUND `MERGE_NOT_FOUND` otherwise. */
  async get(id: string): Promise<MergeView> {
    const ctx = requireContext();
    const row = isUuid(id) ? await this.#load(requestEntityManager(this.#orm), id, ctx.organizationId, false) : undefined;
    if (!row) throw notFound('merge', id);
    return view(row);
  }

  /**
   * Where merged record `id` of `object` went: the live record it ended up in (merges of merges
   * followed; '' when that one is gone too) and the merge that took it. NOT_FOUND
   * `<OBJECT>_NOT_FOUND` unless `id` is a merged record of the caller's organization.
   */
  async mergedRecord(object: DuplicateObject, id: string): Promise<{ mergedIntoId: string; mergeId: string }> {
    const ctx = requireContext();
    const em = requestEntityManager(this.#orm);
    const table = this.#specs[object].table;
    const step = async (recordId: string) =>
      (
        await em.execute<{ merged_into_id: string | null; deleted_at: Date | null }[]>(
          `select merged_into_id, deleted_at from ${table} where organization_id = ? and id = ?`,
          [ctx.organizationId, recordId],
        )
      )[0];
    const first = isUuid(id) ? await step(id) : undefined;
    if (!first?.merged_into_id || !first.deleted_at) throw notFound(object, id);
    const [merge] = await em.execute<{ id: string }[]>(
      `select id from contacts.record_merge where organization_id = ? and object = ? and ?::uuid = any(merged_ids) and undone_at is null
       order by created_at desc limit 1`,
      [ctx.organizationId, object, id],
    );
    let target: string = first.merged_into_id;
    for (let hop = 0; hop < 16; hop++) {
      const next = isUuid(target) ? await step(target) : undefined;
      if (!next) return { mergedIntoId: '', mergeId: merge?.id ?? '' };
      if (!next.deleted_at) return { mergedIntoId: target, mergeId: merge?.id ?? '' };
      if (!next.merged_into_id) break;
      target = next.merged_into_id;
    }
    return { mergedIntoId: '', mergeId: merge?.id ?? '' };
  }

  /**
   * One transaction for `spec`'s records, its events into the outbox; unique violations become 409s
   * naming the field. A transaction Postgres aborts as a deadlock victim or serialization failure
   * (40P01 / 40001) is run again from the start, as the records kit does, at most
   * `WRITE_ATTEMPTS` (3) times in all; past that UNAVAILABLE `WRITE_CONFLICT` (503: retry), never a 500.
   */
  async #transaction(
    spec: ObjectSpec,
    operation: 'merge' | 'undo',
    work: (em: EntityManager) => Promise<{ id: string; events: PendingEvent[] }>,
  ): Promise<string> {
    const attempt = () =>
      requestEntityManager(this.#orm).transactional(async (em) => {
        const { id, events } = await work(em);
        recordEvents(em, SOURCE, events);
        return id;
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
      if (error instanceof UniqueConstraintViolationException) throw uniqueConflict(spec, operation, error);
      if (error instanceof DeadlockException) {
        throw new DomainError('unavailable', 'WRITE_CONFLICT', `the ${operation} collided with concurrent writes ${WRITE_ATTEMPTS} times; retry`);
      }
      throw error;
    }
  }

  async #merge(em: EntityManager, spec: ObjectSpec, request: MergeRequest, mergeId: string, expectedVersion: number | undefined): Promise<PendingEvent[]> {
    const ctx = requireContext();
    const org = ctx.organizationId;
    const now = new Date();
    const S = request.survivorId;
    const all = [S, ...request.mergedIds];
    // row locks first (id order), then the organization's hierarchy lock (as company.service.ts:
    // the kit locks the written row, then `lockHierarchy`), then — contacts — the primary-contact
    // locks of their companies (as contact.service.ts `demotePrimary`: row, then that lock)
    const rows = await lockedRows(em, spec.table, org, all);
    if (spec.object === 'company') await lockHierarchy(em, org);
    else
      await lockPrimaryContacts(
        em,
        org,
        [...rows.values()].map((r) => r['company_id']),
      );
    for (const id of all) {
      const row = rows.get(id);
      if (!row) throw notFound(spec.object, id);
      if (row['deleted_at'] !== null) {
        if (row['merged_into_id']) {
          throw new DomainError(
            'conflict',
            `${spec.object.toUpperCase()}_ALREADY_MERGED`,
            `${spec.object} ${id} was merged into ${String(row['merged_into_id'])}`,
            [{ field: id === S ? 'survivorId' : `mergedIds.${request.mergedIds.indexOf(id)}`, message: 'already merged' }],
          );
        }
        throw notFound(spec.object, id);
      }
    }
    const survivorRow = rows.get(S)!;
    if (expectedVersion !== undefined && Number(survivorRow['version']) !== expectedVersion) {
      throw versionMismatch(spec.object, String(expectedVersion), String(survivorRow['version']));
    }
    if (spec.object === 'company') {
      const above = (await ancestors(em, org, S)).filter((a) => request.mergedIds.includes(a));
      if (above.length) {
        throw new DomainError('rule_violation', 'MERGE_INTO_SUBSIDIARY', `company ${above[0]} is above the survivor in the hierarchy: merge into it instead`, [
          { field: `mergedIds.${request.mergedIds.indexOf(above[0]!)}`, message: 'a parent (or higher) of the survivor' },
        ]);
      }
    }
    // field values (the kit's one value shape) of every record, for choices and "empty"
    const entities = await em.find(spec.entity, { id: { $in: all } }, { refresh: true });
    const values = new Map(entities.map((e) => [e.id, structuredClone(spec.service.toValues(e as RecordRow<AnyFields>))]));
    const next = survivorColumns(spec, request, rows, values);
    const changed = changedColumns(survivorRow, next, spec.fieldColumns);

    // 1. merged records leave first: the survivor may take their unique values (e-mail, domain)
    await em.execute(
      `update ${spec.table} set deleted_at = ?, merged_into_id = ?, version = version + 1, updated_at = ? where organization_id = ? and id = any(?::uuid[])`,
      [now, S, now, org, pgArray(request.mergedIds)],
    );
    // 2. the survivor takes its new values
    if (changed.length) await writeColumns(em, spec.table, org, S, pick(next, changed), now);
    const survivorAfter = (await lockedRows(em, spec.table, org, [S])).get(S)!;
    // 3. references to merged records point at the survivor
    const moved = await this.#repoint(em, spec, org, request, now);
    // 4. documents of merged records (document.service.ts: version + 1 and an `updated` event each)
    const documents = await repointDocuments(em, org, spec.object, request.mergedIds, S);
    // 5. static segment memberships
    const memberships = await em.execute<{ segment_id: string }[]>(
      `insert into contacts.segment_member (segment_id, record_id, organization_id, created_at, created_by)
       select distinct m.segment_id, ?::uuid, m.organization_id, ?::timestamptz, ? from contacts.segment_member m
       join contacts.segment s on s.id = m.segment_id and s.organization_id = m.organization_id and s.deleted_at is null and s.kind = 'static'
       where m.organization_id = ? and m.record_id = any(?::uuid[])
       on conflict do nothing returning segment_id`,
      [S, now, ctx.userId, org, pgArray(request.mergedIds)],
    );
    const segments = memberships.map((m) => m.segment_id).sort();
    if (segments.length) {
      await em.execute('update contacts.segment set member_count = member_count + 1 where organization_id = ? and id = any(?::uuid[])', [
        org,
        pgArray(segments),
      ]);
    }
    if (spec.object === 'company') await assertNoCycle(em, org, S);

    const snapshot: MergeSnapshot = {
      survivor: { before: survivorRow, after: survivorAfter },
      merged: request.mergedIds.map((id) => rows.get(id)!),
      moved,
      memberships: segments,
      documents,
    };
    await em.execute(
      `insert into contacts.record_merge (id, organization_id, object, survivor_id, merged_ids, field_choices, snapshot, created_at, created_by)
       values (?, ?, ?, ?, ?::uuid[], ?::jsonb, ?::jsonb, ?, ?)`,
      [mergeId, org, spec.object, S, pgArray(request.mergedIds), JSON.stringify(request.fieldChoices), JSON.stringify(snapshot), now, ctx.userId],
    );

    const events = await this.#updatedEvents(em, spec, new Map([[S, values.get(S)!]]));
    events.push(...(await this.#movedEvents(em, moved)));
    const merged = { survivorId: S, mergedIds: request.mergedIds, mergeId };
    events.push(
      spec.object === 'company'
        ? event('crm.contacts.company.merged', 'CompanyMerged', S, mergesEventsV1.CompanyMerged.encode(merged).finish())
        : event('crm.contacts.contact.merged', 'ContactMerged', S, mergesEventsV1.ContactMerged.encode(merged).finish()),
    );
    events.push(...segments.map((segmentId) => memberEvent('added', segmentId, S, spec.object)));
    return events;
  }

  /**
   * Points references to merged records at the survivor: companies' contacts (`company_id`, as
   * non-primary) and subsidiaries (`parent_company_id`); contacts' referrals (`referred_by_id`).
   * Live rows only, never the survivor or a merged record. Returns what changed, column by column.
   */
  async #repoint(em: EntityManager, spec: ObjectSpec, org: string, request: MergeRequest, now: Date): Promise<MovedRow[]> {
    const S = request.survivorId;
    const involved = pgArray([S, ...request.mergedIds]);
    const merged = pgArray(request.mergedIds);
    const plans: { object: DuplicateObject; table: string; column: string; set: Row }[] =
      spec.object === 'company'
        ? [
            { object: 'contact', table: 'contacts.contact', column: 'company_id', set: { company_id: S, is_primary: false } },
            { object: 'company', table: 'contacts.company', column: 'parent_company_id', set: { parent_company_id: S } },
          ]
        : [{ object: 'contact', table: 'contacts.contact', column: 'referred_by_id', set: { referred_by_id: S } }];
    const moved: MovedRow[] = [];
    for (const plan of plans) {
      const columns = Object.keys(plan.set);
      const rows = await em.execute<{ id: string; row: Row }[]>(
        `select id, jsonb_build_object(${columns.map((c) => `'${c}', ${quoteIdent(c)}`).join(', ')}) as row from ${plan.table}
         where organization_id = ? and deleted_at is null and ${quoteIdent(plan.column)} = any(?::uuid[]) and id <> all(?::uuid[])
         order by id for no key update`,
        [org, merged, involved],
      );
      if (rows.length === 0) continue;
      await em.execute(
        `update ${plan.table} set ${columns.map((c) => `${quoteIdent(c)} = ?`).join(', ')}, version = version + 1, updated_at = ?
         where organization_id = ? and id = any(?::uuid[])`,
        [...columns.map((c) => plan.set[c]), now, org, pgArray(rows.map((r) => r.id))],
      );
      for (const r of rows) {
        const changedHere = changedColumns(r.row, plan.set, columns);
        moved.push({ object: plan.object, id: r.id, before: pick(r.row, changedHere), after: pick(plan.set, changedHere) });
      }
    }
    return moved;
  }

  async #undo(em: EntityManager, spec: ObjectSpec, mergeId: string): Promise<PendingEvent[]> {
    const ctx = requireContext();
    const org = ctx.organizationId;
    const now = new Date();
    const merge = await this.#load(em, mergeId, org, true);
    if (!merge) throw notFound('merge', mergeId);
    if (merge.undone_at) throw new DomainError('conflict', 'MERGE_ALREADY_UNDONE', `merge ${mergeId} was undone at ${new Date(merge.undone_at).toISOString()}`);
    if (now.getTime() - new Date(merge.created_at).getTime() > UNDO_DAYS * DAY_MS) {
      throw new DomainError('conflict', 'MERGE_UNDO_EXPIRED', `merges can be undone for ${UNDO_DAYS} days; merge ${mergeId} is older`);
    }
    const snap = merge.snapshot;
    const S = merge.survivor_id;
    // lock order as in #merge: rows, then the hierarchy lock / the primary-contact locks
    const rows = await lockedRows(em, spec.table, org, [S, ...merge.merged_ids]);
    if (spec.object === 'company') await lockHierarchy(em, org);
    else await lockPrimaryContacts(em, org, [...[...rows.values()].map((r) => r['company_id']), ...snap.merged.map((r) => r['company_id'])]);
    const current = rows.get(S);
    if (!current || current['deleted_at'] !== null) {
      throw new DomainError('conflict', 'MERGE_SURVIVOR_GONE', `the survivor ${S} was deleted or merged since; restore it first`);
    }
    const conflicts: MergeConflictView[] = [];
    const survivorEntity = await em.findOne(spec.entity, { id: S }, { refresh: true });
    const survivorValues = new Map([[S, structuredClone(spec.service.toValues(survivorEntity as RecordRow<AnyFields>))]]);

    // 1. the survivor's fields the merge changed, unless changed since
    const survivor = restoreColumns(snap.survivor.before, snap.survivor.after, current, spec.fieldColumns, {
      setColumns: ['tags'],
      objectColumns: ['custom_fields'],
    });
    for (const column of survivor.conflicts) conflicts.push({ recordId: S, field: conflictField(spec, column) });
    // its primary slot taken since (another contact of its company became primary): back as non-primary
    if (spec.object === 'contact') {
      const final = { ...current, ...survivor.restore };
      if (final['is_primary'] === true && typeof final['company_id'] === 'string' && (await primaryTaken(em, org, final['company_id'], S))) {
        survivor.restore['is_primary'] = false;
        conflicts.push({ recordId: S, field: 'isPrimary' });
      }
    }
    if (Object.keys(survivor.restore).length) await writeColumns(em, spec.table, org, S, survivor.restore, now);

    // 2. merged records exactly as they were (a primary slot taken since: back as non-primary)
    for (const before of snap.merged) {
      const row = { ...before };
      if (spec.object === 'contact' && row['is_primary'] === true && typeof row['company_id'] === 'string') {
        if (await primaryTaken(em, org, row['company_id'], String(row['id']))) {
          row['is_primary'] = false;
          conflicts.push({ recordId: String(row['id']), field: 'isPrimary' });
        }
      }
      const columns = Object.keys(row).filter((c) => !IDENTITY.includes(c));
      await em.execute(
        `update ${spec.table} t set (${columns.map(quoteIdent).join(', ')}) = (select ${columns.map((c) => `r.${quoteIdent(c)}`).join(', ')}
           from jsonb_populate_record(null::${spec.table}, ?::jsonb) r)
         where t.organization_id = ? and t.id = ?`,
        [JSON.stringify(row), org, row['id']],
      );
    }

    // 3. moved records, where they still point at the survivor
    const movedValues = new Map<DuplicateObject, Map<string, Record<string, unknown>>>();
    for (const object of ['company', 'contact'] as const) {
      const ids = snap.moved.filter((m) => m.object === object).map((m) => m.id);
      if (!ids.length) continue;
      const target = this.#specs[object];
      const entities = await em.find(target.entity, { id: { $in: ids } }, { refresh: true, filters: { live: false } });
      movedValues.set(object, new Map(entities.map((e) => [e.id, structuredClone(target.service.toValues(e as RecordRow<AnyFields>))])));
      const locked = await lockedRows(em, target.table, org, ids);
      for (const m of snap.moved.filter((x) => x.object === object)) {
        const stored = locked.get(m.id);
        if (!stored) continue;
        // all or nothing per record: its columns belong together (a contact's company and primary flag)
        const restored = restoreColumns(m.before, m.after, stored, Object.keys(m.after));
        if (restored.conflicts.length) for (const column of Object.keys(m.after)) conflicts.push({ recordId: m.id, field: fieldOfColumn(target, column) });
        else if (Object.keys(restored.restore).length) await writeColumns(em, target.table, org, m.id, restored.restore, now);
      }
    }

    // 3b. references of the restored records to records deleted or merged since, and (companies)
    // hierarchy cycles made since: the reference is cleared and reported as a conflict
    const restoredIds = [S, ...merge.merged_ids];
    const referenceValues = new Map<string, Record<string, unknown>>();
    const touched = await this.#clearBrokenReferences(em, spec, org, restoredIds, now, referenceValues);
    for (const t of touched) conflicts.push(t);
    const restoredEvents = await this.#updatedEvents(em, spec, new Map([...referenceValues].filter(([id]) => id !== S)));

    // 4. documents back to the merged records, unless deleted or moved on since
    const documents = await restoreDocumentParents(em, org, snap.documents ?? []);
    for (const id of documents.skipped) {
      const move = snap.documents?.find((d) => d.documentId === id);
      conflicts.push({ recordId: id, field: move?.object === 'company' ? 'companyId' : 'contactId' });
    }

    // 5. memberships the merge added (those still there from the merge)
    const removed = snap.memberships.length
      ? await em.execute<{ segment_id: string }[]>(
          `delete from contacts.segment_member where organization_id = ? and record_id = ? and segment_id = any(?::uuid[]) and created_at = ?
           returning segment_id`,
          [org, S, pgArray(snap.memberships), new Date(merge.created_at)],
        )
      : [];
    const segments = removed.map((r) => r.segment_id).sort();
    if (segments.length)
      await em.execute('update contacts.segment set member_count = greatest(member_count - 1, 0) where organization_id = ? and id = any(?::uuid[])', [
        org,
        pgArray(segments),
      ]);

    // one entry per record and field (a phone's number and its text as typed are one field)
    const reported = [...new Map(conflicts.map((c) => [`${c.recordId}:${c.field}`, c])).values()];
    conflicts.splice(0, conflicts.length, ...reported);
    await em.execute('update contacts.record_merge set undone_at = ?, undone_by = ?, undo_conflicts = ?::jsonb where organization_id = ? and id = ?', [
      now,
      ctx.userId,
      JSON.stringify(conflicts),
      org,
      mergeId,
    ]);

    const events = await this.#updatedEvents(em, spec, survivorValues);
    events.push(...restoredEvents);
    for (const [object, before] of movedValues) events.push(...(await this.#updatedEvents(em, this.#specs[object], before, true)));
    const unmerged = { survivorId: S, restoredIds: merge.merged_ids, mergeId, conflicts };
    events.push(
      spec.object === 'company'
        ? event('crm.contacts.company.unmerged', 'CompanyUnmerged', S, mergesEventsV1.CompanyUnmerged.encode(unmerged).finish())
        : event('crm.contacts.contact.unmerged', 'ContactUnmerged', S, mergesEventsV1.ContactUnmerged.encode(unmerged).finish()),
    );
    events.push(...segments.map((segmentId) => memberEvent('removed', segmentId, S, spec.object)));
    return events;
  }

  /**
   * After an undo's restores: references of records `ids` (`companyId`, `referredById` of
   * contacts; `parentCompanyId` of companies) to a record that is no longer live (deleted or
   * merged since the merge) are cleared, and so is a company's parent that now closes a cycle in
   * the hierarchy (e.g. P → X → B → P made while B was merged away; company.hierarchy rules). A
   * cleared `companyId` clears `isPrimary` too. Each clear bumps the record's version and
   * `updatedAt` and is returned as a conflict; `before` gets the values of each changed record
   * before the clear (for its `updated` event).
   */
  async #clearBrokenReferences(
    em: EntityManager,
    spec: ObjectSpec,
    org: string,
    ids: readonly string[],
    now: Date,
    before: Map<string, Record<string, unknown>>,
  ): Promise<MergeConflictView[]> {
    const refs: { column: string; field: string; target: string; extra: string }[] =
      spec.object === 'contact'
        ? [
            { column: 'company_id', field: 'companyId', target: 'contacts.company', extra: ', is_primary = false' },
            { column: 'referred_by_id', field: 'referredById', target: 'contacts.contact', extra: '' },
          ]
        : [{ column: 'parent_company_id', field: 'parentCompanyId', target: 'contacts.company', extra: '' }];
    const remember = async (changed: readonly string[]) => {
      const fresh = changed.filter((id) => !before.has(id));
      if (!fresh.length) return;
      const entities = await em.find(spec.entity, { id: { $in: fresh } }, { refresh: true, filters: { live: false } });
      for (const e of entities) before.set(e.id, structuredClone(spec.service.toValues(e as RecordRow<AnyFields>)));
    };
    const conflicts: MergeConflictView[] = [];
    for (const ref of refs) {
      const column = quoteIdent(ref.column);
      const broken = await em.execute<{ id: string }[]>(
        `select t.id from ${spec.table} t where t.organization_id = ? and t.id = any(?::uuid[]) and t.deleted_at is null and t.${column} is not null
           and not exists (select 1 from ${ref.target} r where r.organization_id = t.organization_id and r.id = t.${column} and r.deleted_at is null)
         order by t.id`,
        [org, pgArray(ids)],
      );
      if (!broken.length) continue;
      await remember(broken.map((b) => b.id));
      await em.execute(
        `update ${spec.table} set ${column} = null${ref.extra}, version = version + 1, updated_at = ? where organization_id = ? and id = any(?::uuid[])`,
        [now, org, pgArray(broken.map((b) => b.id))],
      );
      for (const b of broken) conflicts.push({ recordId: b.id, field: ref.field });
    }
    if (spec.object === 'company') {
      for (const id of ids) {
        if (!(await ancestors(em, org, id)).includes(id)) continue;
        await remember([id]);
        await em.execute('update contacts.company set parent_company_id = null, version = version + 1, updated_at = ? where organization_id = ? and id = ?', [
          now,
          org,
          id,
        ]);
        conflicts.push({ recordId: id, field: 'parentCompanyId' });
      }
    }
    return conflicts;
  }

  /** `updated` events of moved records (their values before the merge's repointing, read again now). */
  async #movedEvents(em: EntityManager, moved: readonly MovedRow[]): Promise<PendingEvent[]> {
    const events: PendingEvent[] = [];
    for (const object of ['company', 'contact'] as const) {
      const mine = moved.filter((m) => m.object === object);
      if (!mine.length) continue;
      const spec = this.#specs[object];
      // the values before, from the columns the merge changed (plain uuids and booleans)
      const before = new Map<string, Record<string, unknown>>();
      const entities = await em.find(spec.entity, { id: { $in: mine.map((m) => m.id) } }, { refresh: true, filters: { live: false } });
      for (const e of entities) {
        const values: Record<string, unknown> = structuredClone(spec.service.toValues(e as RecordRow<AnyFields>));
        const m = mine.find((x) => x.id === e.id)!;
        for (const [column, value] of Object.entries(m.before)) values[fieldOfColumn(spec, column)] = value;
        before.set(e.id, values);
      }
      events.push(...(await this.#updatedEvents(em, spec, before, true)));
    }
    return events;
  }

  /**
   * `updated` events (the kit's message: the record, changed fields, each with old and new value)
   * for the records in `before` whose values differ now; read again after the writes, so the
   * events carry the final versions.
   */
  async #updatedEvents(em: EntityManager, spec: ObjectSpec, before: ReadonlyMap<string, Record<string, unknown>>, anyState = false): Promise<PendingEvent[]> {
    if (before.size === 0) return [];
    const rows = await em.find(spec.entity, { id: { $in: [...before.keys()] } }, { refresh: true, ...(anyState ? { filters: { live: false } } : {}) });
    const codec = spec.record.events['updated']!;
    const events: PendingEvent[] = [];
    for (const row of rows) {
      const old = before.get(row.id);
      if (!old) continue;
      const now = spec.service.toValues(row as RecordRow<AnyFields>) as Record<string, unknown>;
      const changes = Object.keys(spec.record.fields)
        .filter((k) => canonical(jsonValue(old[k])) !== canonical(jsonValue(now[k])))
        .map((k) => ({ field: snakeCase(k), oldValue: jsonValue(old[k]), newValue: jsonValue(now[k]) }));
      if (!changes.length) continue;
      const message = { [spec.record.name]: spec.service.toMessage(row as RecordRow<AnyFields>), changedFields: changes.map((c) => c.field), changes };
      events.push({
        subject: `crm.contacts.${spec.object}.updated`,
        dataSchema: `crm.events.v1.${spec.object === 'company' ? 'Company' : 'Contact'}Updated`,
        aggregateId: row.id,
        data: codec.encode(message).finish(),
      });
    }
    return events;
  }

  async #load(em: EntityManager, id: string, org: string, forUpdate: boolean): Promise<MergeRowRaw | undefined> {
    const [row] = await em.execute<MergeRowRaw[]>(
      `select id, object, survivor_id, merged_ids, field_choices, snapshot, created_at, created_by, undone_at, undone_by, undo_conflicts
       from contacts.record_merge where id = ? and organization_id = ?${forUpdate ? ' for update' : ''}`,
      [id, org],
    );
    return row;
  }
}

/** crm-admin and crm-manager merge and undo; others PERMISSION_DENIED `NOT_ALLOWED`. */
function assertMayMerge(): void {
  if (!hasAnyRole(requireContext(), 'crm-admin', 'crm-manager')) {
    throw new DomainError('permission_denied', 'NOT_ALLOWED', 'merging records requires the role crm-admin or crm-manager');
  }
}

function objectSpec(orm: Orm, object: DuplicateObject): ObjectSpec {
  const record = (object === 'company' ? companyRecord : contactRecord) as unknown as RecordDeclaration<unknown, AnyFields>;
  const entity = object === 'company' ? CompanyEntity : ContactEntity;
  const meta = orm.getMetadata().find(entity);
  if (!meta) throw new Error(`no metadata for ${object}`);
  const columns = new Map<string, string[]>();
  for (const [key, spec] of Object.entries(record.fields)) {
    if (spec.kind === 'text' && spec.originalOf) continue; // goes with its phone (below)
    const prop = meta.properties[key as keyof typeof meta.properties];
    const own =
      prop?.kind === 'embedded' ? meta.props.filter((p) => p.embedded?.[0] === key).flatMap((p) => p.fieldNames) : [...(prop?.fieldNames ?? [snakeCase(key)])];
    const originals = Object.entries(record.fields)
      .filter(([, s]) => s.kind === 'text' && s.originalOf === key)
      .map(([k]) => snakeCase(k));
    columns.set(key, [...own, ...originals]);
  }
  const derived = object === 'contact' ? ['isPrimary'] : [];
  const choosable = [...columns.keys()].filter((k) => !['tags', 'mergedIntoId', ...derived].includes(k));
  return {
    object,
    record,
    entity,
    table: `contacts.${object}`,
    service: new RecordService(orm, record, entity),
    columns,
    fieldColumns: [...columns.values()].flat(),
    choosable,
  };
}

/** The field a column belongs to (its own name when none). */
function fieldOfColumn(spec: ObjectSpec, column: string): string {
  return [...spec.columns].find(([, cols]) => cols.includes(column))?.[0] ?? column;
}

/**
 * The survivor's row after the merge (see the module comment): columns of each field from the
 * record {@link fieldSources} picks, then the fields with their own rules.
 */
function survivorColumns(spec: ObjectSpec, request: MergeRequest, rows: ReadonlyMap<string, Row>, values: ReadonlyMap<string, Record<string, unknown>>): Row {
  const S = request.survivorId;
  const survivor = rows.get(S)!;
  const next: Row = { ...survivor };
  const ordered = [S, ...request.mergedIds];
  const sources = fieldSources(spec.choosable, request, values);
  for (const field of spec.choosable) for (const column of spec.columns.get(field)!) next[column] = rows.get(sources[field]!)?.[column] ?? null;
  next['tags'] = unionTags(ordered.map((id) => rows.get(id)?.['tags'] as string[] | null));
  if (!request.fieldChoices['customFields']) {
    next['custom_fields'] = unionCustomFields(ordered.map((id) => rows.get(id)?.['custom_fields'] as Record<string, unknown> | null));
  }
  const involved = new Set(ordered);
  if (spec.object === 'contact') {
    for (const flag of ['do_not_call', 'email_opt_out']) {
      const field = fieldOfColumn(spec, flag);
      if (!request.fieldChoices[field]) next[flag] = ordered.some((id) => rows.get(id)?.[flag] === true);
    }
    const company = next['company_id'] ?? null;
    next['is_primary'] =
      company !== null &&
      ((survivor['is_primary'] === true && survivor['company_id'] === company) ||
        request.mergedIds.some((id) => rows.get(id)?.['is_primary'] === true && rows.get(id)?.['company_id'] === company));
    next['referred_by_id'] = ownReference(next['referred_by_id'], survivor['referred_by_id'], involved);
  } else {
    next['parent_company_id'] = ownReference(next['parent_company_id'], survivor['parent_company_id'], involved);
  }
  next['merged_into_id'] = survivor['merged_into_id'] ?? null;
  return next;
}

/** A reference that would point at the survivor or a merged record: the survivor's own (if it points elsewhere), else none. */
function ownReference(value: unknown, survivors: unknown, involved: ReadonlySet<string>): unknown {
  if (typeof value !== 'string' || !involved.has(value)) return value ?? null;
  return typeof survivors === 'string' && !involved.has(survivors) ? survivors : null;
}

/**
 * Rows of `ids` in `table` of `org` (any state) as `to_jsonb`, locked `for no key update` in id
 * order (no deadlocks between merges). Every number column comes as its text (a JSON string):
 * node-pg parses JSON numbers into JS doubles, which would round a `numeric(19,4)` amount such as
 * 1234567890123.4567; `jsonb_populate_record` (see {@link writeColumns}) reads the text back into
 * the column's own type exactly.
 */
async function lockedRows(em: EntityManager, table: string, org: string, ids: readonly string[]): Promise<Map<string, Row>> {
  const rows = await em.execute<{ row: Row }[]>(
    `select ${NUMBERS_AS_TEXT('to_jsonb(t.*)')} as row from ${table} t where t.organization_id = ? and t.id = any(?::uuid[]) order by t.id for no key update`,
    [org, pgArray(ids)],
  );
  return new Map(rows.map((r) => [String(r.row['id']), r.row]));
}

/** SQL: the JSON object `json` with its top-level numbers as JSON strings of their exact text. */
const NUMBERS_AS_TEXT = (json: string): string =>
  `(select jsonb_object_agg(e.key, case jsonb_typeof(e.value) when 'number' then to_jsonb(e.value #>> '{}') else e.value end) from jsonb_each(${json}) e)`;

/**
 * Takes the primary-contact locks (contact.service.ts `demotePrimary`:
 * `contacts.primary-contact:<organization>:<company>`) of `companyIds` (nulls skipped), in
 * order, so a merge or undo that sets `is_primary` sees every primary change committed before it.
 */
async function lockPrimaryContacts(em: EntityManager, org: string, companyIds: readonly unknown[]): Promise<void> {
  const ids = [...new Set(companyIds.filter((c): c is string => typeof c === 'string'))].sort();
  for (const id of ids) await em.execute('select pg_advisory_xact_lock(hashtext(?))', [`contacts.primary-contact:${org}:${id}`]);
}

/** Writes `columns` (column → JSON value, converted by the column's own type) of one row, its version + 1 and `updated_at`. */
async function writeColumns(em: EntityManager, table: string, org: string, id: string, columns: Row, now: Date): Promise<void> {
  const names = Object.keys(columns);
  await em.execute(
    `update ${table} t set (${names.map(quoteIdent).join(', ')}) = (select ${names.map((c) => `r.${quoteIdent(c)}`).join(', ')}
       from jsonb_populate_record(null::${table}, ?::jsonb) r), version = t.version + 1, updated_at = ?
     where t.organization_id = ? and t.id = ?`,
    [JSON.stringify(columns), now, org, id],
  );
}

function pick(row: Row, columns: readonly string[]): Row {
  return Object.fromEntries(columns.map((c) => [c, row[c] ?? null]));
}

/** True when another live contact than `self` is the primary contact of company `companyId`. */
async function primaryTaken(em: EntityManager, org: string, companyId: string, self: string): Promise<boolean> {
  const [taken] = await em.execute<{ id: string }[]>(
    'select id from contacts.contact where organization_id = ? and company_id = ? and is_primary and deleted_at is null and id <> ? limit 1',
    [org, companyId, self],
  );
  return taken !== undefined;
}

/** The conflict's field name of a column (`custom_fields.<key>` → `customFields.<key>`). */
function conflictField(spec: ObjectSpec, column: string): string {
  const dot = column.indexOf('.');
  return dot < 0 ? fieldOfColumn(spec, column) : `${fieldOfColumn(spec, column.slice(0, dot))}${column.slice(dot)}`;
}

/** The company hierarchy lock of company.service.ts (`contacts.company-hierarchy:<organization>`), so hierarchy rules see merges. */
async function lockHierarchy(em: EntityManager, org: string): Promise<void> {
  await em.execute('select pg_advisory_xact_lock(hashtext(?))', [`contacts.company-hierarchy:${org}`]);
}

/** Ids of the ancestors of company `id` (parent first), at most 64 levels. */
async function ancestors(em: EntityManager, org: string, id: string): Promise<string[]> {
  const rows = await em.execute<{ id: string }[]>(
    `with recursive up(id, parent, depth) as (
       select id, parent_company_id, 0 from contacts.company where id = ? and organization_id = ?
       union all
       select c.id, c.parent_company_id, up.depth + 1 from contacts.company c join up on c.id = up.parent where up.depth < 64 and c.organization_id = ?
     ) select id from up where depth > 0 order by depth`,
    [id, org, org],
  );
  return rows.map((r) => r.id);
}

/** 422 `COMPANY_HIERARCHY_CYCLE` when company `id` is now among its own ancestors. */
async function assertNoCycle(em: EntityManager, org: string, id: string): Promise<void> {
  if ((await ancestors(em, org, id)).includes(id)) {
    throw new DomainError('rule_violation', 'COMPANY_HIERARCHY_CYCLE', 'the merged hierarchy would be circular', [
      { field: 'fieldChoices.parentCompanyId', message: 'would make the survivor its own ancestor' },
    ]);
  }
}

/**
 * A unique value (e-mail, domain, external id, a company's primary contact) another live record
 * holds: 409 naming the field — `MERGE_UNDO_CONFLICT` when an undo would restore it (taken since
 * the merge), `MERGE_CONFLICT` for a merge (a concurrent write took it).
 */
function uniqueConflict(spec: ObjectSpec, operation: 'merge' | 'undo', error: UniqueConstraintViolationException): DomainError {
  const constraint = 'constraint' in error ? String((error as { constraint?: unknown }).constraint) : '';
  const column =
    constraint === 'contact_primary_uq' ? 'isPrimary' : Object.keys(spec.record.fields).find((k) => constraint === `${spec.object}_${snakeCase(k)}_uq`);
  const message = operation === 'undo' ? 'taken by another record since the merge: change it there first' : 'taken by another record';
  const violations: FieldViolation[] = [{ field: column ?? 'record', message }];
  return new DomainError(
    'conflict',
    operation === 'undo' ? 'MERGE_UNDO_CONFLICT' : 'MERGE_CONFLICT',
    `cannot ${operation === 'undo' ? 'restore' : 'merge'}: ${column ?? constraint} is used by another ${spec.object} now`,
    violations,
  );
}

function event(subject: string, message: string, aggregateId: string, data: Uint8Array): PendingEvent {
  return { subject, dataSchema: `crm.events.v1.${message}`, aggregateId, data };
}

function memberEvent(kind: 'added' | 'removed', segmentId: string, recordId: string, object: DuplicateObject): PendingEvent {
  const message = { segmentId, recordId, object: toProto(segmentRecord.fields.object, object) as number };
  const codec = kind === 'added' ? segmentsEventsV1.SegmentMemberAdded : segmentsEventsV1.SegmentMemberRemoved;
  return event(
    `crm.contacts.segment.member_${kind}`,
    `SegmentMember${kind === 'added' ? 'Added' : 'Removed'}`,
    segmentId,
    codec.encode(message as never).finish(),
  );
}

/** A value as JSON for change detection and `FieldChange` (dates as ISO 8601), as the records kit reports changes. */
function jsonValue(value: unknown): unknown {
  return value instanceof Date ? value.toISOString() : (value ?? null);
}

function view(row: MergeRowRaw): MergeView {
  const createdAt = new Date(row.created_at);
  return {
    id: row.id,
    object: row.object,
    survivorId: row.survivor_id,
    mergedIds: row.merged_ids,
    fieldChoices: row.field_choices,
    createdAt,
    createdBy: row.created_by,
    undoDeadline: new Date(createdAt.getTime() + UNDO_DAYS * DAY_MS),
    undoneAt: row.undone_at ? new Date(row.undone_at) : null,
    undoneBy: row.undone_by,
    conflicts: row.undo_conflicts ?? [],
    movedIds: [...new Set([...row.snapshot.moved.map((m) => m.id), ...(row.snapshot.documents ?? []).map((d) => d.documentId)])],
  };
}
