import { defineEntity, p } from '@mikro-orm/core';
import type pg from 'pg';
import { companyRecord, contactRecord, segmentRecord, segmentsEventsV1, toProto, type SegmentObjectName } from '@crm/contracts';
import {
  assertWriteRole,
  DomainError,
  isUuid,
  keysetPageById,
  notFound,
  recordEntity,
  recordEvents,
  RecordService,
  requestEntityManager,
  requireContext,
  type EntityManager,
  type FieldViolation,
  type Orm,
  type PendingEvent,
  type RecordRow,
} from '@crm/platform';
import { CompanyEntity } from '../company/company.service.ts';
import { ContactEntity } from '../contact/contact.service.ts';
import { activeDefinitions } from '../custom-field/definitions.ts';
import { binder, checkCriteria, compileCriteria, type CheckedCriteria } from './segment.criteria.ts';
import { assertSegmentFits } from './segment.rules.ts';

type SegmentFields = typeof segmentRecord.fields;
/** A stored segment. */
export type SegmentRow = RecordRow<SegmentFields>;

/** `contacts.segment`, derived from {@link segmentRecord}. */
export const SegmentEntity = recordEntity(segmentRecord);

/**
 * `contacts.segment_member`: the explicit members of static segments, one row per (segment,
 * record). `record_id` names a company or a contact (the segment's object), so it has no foreign
 * key; the record was a live record of the organization when added. `segment_member_record_idx`
 * finds a record's memberships.
 */
export const SegmentMemberEntity = defineEntity({
  name: 'SegmentMember',
  tableName: 'segment_member',
  properties: {
    segmentId: p.uuid().primary(),
    recordId: p.uuid().primary(),
    organizationId: p.uuid(),
    createdAt: p.datetime(),
    createdBy: p.text(),
  },
  indexes: [{ name: 'segment_member_record_idx', properties: ['recordId'] }],
});

/** Tables of the segment objects (trusted identifiers, never from input). */
const TABLES: Record<SegmentObjectName, string> = { company: 'contacts.company', contact: 'contacts.contact' };

/** A page of members: full records as the companies/contacts endpoints serve them. */
export interface MemberPage {
  object: SegmentObjectName;
  /** proto messages of the records (`Company` or `Contact`), in record id order. */
  records: Record<string, unknown>[];
  nextCursor: string | undefined;
}

/**
 * Segments: the kit's record service (crm-admin and crm-manager write) plus
 * - the segment's rules ({@link assertSegmentFits}) and its criteria checked against the
 *   organization's custom field definitions of the object (400 naming `criteria.all.0.value` …);
 * - `memberCount`, output only: counted on every read of one dynamic segment (one count query;
 *   unset when the criteria no longer hold, e.g. a custom field deleted since, and in lists), and
 *   for static ones their live members on every read (a member whose record was deleted is neither
 *   listed nor counted; the stored `member_count` is kept +1/−1 with each membership change without
 *   a new version — membership is a child resource — but no longer served);
 * - members: dynamic ones evaluated live, static ones from `segment_member`; both list live
 *   records only, keyset-paged by record id.
 *
 */
export class SegmentService extends RecordService<SegmentFields> {
  readonly #orm: Orm;
  readonly #companies: RecordService<typeof companyRecord.fields>;
  readonly #contacts: RecordService<typeof contactRecord.fields>;
  #pool: Promise<pg.Pool> | undefined;

  constructor(orm: Orm) {
    super(orm, segmentRecord, SegmentEntity, {
      hooks: {
        beforeWrite: async ({ em, ctx, values, changed, existing }) => {
          // output only: whatever the caller sent, the stored count stays (0 for a new static segment)
          values.memberCount = existing ? existing.memberCount : values.kind === 'static' ? 0 : null;
          assertSegmentFits(values, changed, existing === undefined);
          if (values.kind === 'dynamic' && values.object && (existing === undefined || changed.has('criteria'))) {
            const checked = checkCriteria(values.criteria, {
              object: values.object,
              definitions: await activeDefinitions(em, ctx.organizationId, values.object),
            });
            if ('errors' in checked) throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'invalid segment criteria', checked.errors);
          }
        },
      },
    });
    this.#orm = orm;
    // only their proto mapping is used: records are served as their own services serve them
    this.#companies = new RecordService(orm, companyRecord, CompanyEntity);
    this.#contacts = new RecordService(orm, contactRecord, ContactEntity);
  }

  /** The kit's create, with `memberCount` counted for a dynamic segment. */
  override async create(...args: Parameters<RecordService<SegmentFields>['create']>): Promise<SegmentRow> {
    return this.#counted(await super.create(...args));
  }

  /** The kit's get, with `memberCount` counted for a dynamic segment. */
  override async get(id: string): Promise<SegmentRow> {
    return this.#counted(await super.get(id));
  }

  /**
   * The kit's list, with `memberCount` counted for each static segment of the page (one indexed
   * count each); dynamic segments' counts are left unset here — each could scan a whole table, and
   * a page of 200 would start 200 of them — and served by `get`.
   */
  override async list(...args: Parameters<RecordService<SegmentFields>['list']>): ReturnType<RecordService<SegmentFields>['list']> {
    const page = await super.list(...args);
    const items: SegmentRow[] = [];
    for (const row of page.items)
      items.push(
        row.kind === 'static'
          ? await this.#counted(row)
          : Object.assign(Object.create(Object.getPrototypeOf(row) as object) as SegmentRow, row, { memberCount: null }),
      );
    return { ...page, items };
  }

  /** The kit's update, with `memberCount` counted for a dynamic segment. */
  override async update(...args: Parameters<RecordService<SegmentFields>['update']>): Promise<SegmentRow> {
    return this.#counted(await super.update(...args));
  }

  /**
   * One page of segment `id`'s live members, ordered by record id (`pageSize` 1..200, default 50;
   * `cursor` from the previous page). Errors: NOT_FOUND (also another organization's segment),
   * 422 `SEGMENT_CRITERIA_INVALID` when a dynamic segment's criteria no longer hold (naming the
   * path), INVALID_PAGE_SIZE, INVALID_CURSOR.
   */
  async members(id: string, page: { pageSize?: number | undefined; cursor?: string | undefined }): Promise<MemberPage> {
    const segment = await super.get(id);
    const object = segment.object!;
    const org = requireContext().organizationId;
    if (segment.kind === 'dynamic') {
      const criteria = await this.#evaluable(object, segment.criteria, 'rule_violation');
      return this.#page(object, page, (after, limit) => this.#matchingIds(org, object, criteria, after, limit));
    }
    return this.#page(object, page, async (after, limit) => {
      const { values, bind } = binder(org, segment.id);
      const sql = `select m.record_id as id from contacts.segment_member m join ${TABLES[object]} r on r.id = m.record_id and r.organization_id = m.organization_id
        where m.organization_id = $1 and m.segment_id = $2 and r.deleted_at is null${after ? ` and m.record_id > ${bind(after)}` : ''}
        order by m.record_id limit ${bind(limit)}`;
      return this.#query<{ id: string }>(sql, values);
    });
  }

  /**
   * Evaluates criteria for `object` without a segment: how many live records match now and the
   * first page of them. Errors: 400 naming the criteria path (`criteria.any.0.op` …), INVALID_PAGE_SIZE.
   */
  async preview(object: SegmentObjectName | null, criteria: unknown, pageSize: number | undefined): Promise<MemberPage & { count: number }> {
    if (object === null) {
      throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'invalid preview', [{ field: 'object', message: 'is required: company or contact' }]);
    }
    const org = requireContext().organizationId;
    const checked = await this.#evaluable(object, criteria, 'invalid_argument');
    const page = await this.#page(object, { pageSize }, (after, limit) => this.#matchingIds(org, object, checked, after, limit));
    return { ...page, count: await this.#count(org, object, checked) };
  }

  /**
   * Adds live record `recordId` to static segment `segmentId`; idempotent (false when it was a
   * member already: nothing changes, no event). Errors: NOT_FOUND for the segment (also another
   * organization's), PERMISSION_DENIED without a write role, 422 `SEGMENT_NOT_STATIC`, 422
   * `SEGMENT_MEMBER_NOT_FOUND` when the record is no live record of the caller's organization and
   * of the segment's object. Emits `crm.contacts.segment.member_added`.
   */
  async addMember(segmentId: string, recordId: string): Promise<boolean> {
    return this.#membership('added', segmentId, recordId, async (em, segment, org, userId) => {
      if (!(await this.#isLiveRecord(em, segment.object, recordId, org))) throw memberNotFound(segment.object, recordId);
      const inserted = await em.execute<{ record_id: string }[]>(
        `insert into contacts.segment_member (segment_id, record_id, organization_id, created_at, created_by) values (?, ?, ?, now(), ?)
         on conflict do nothing returning record_id`,
        [segment.id, recordId.toLowerCase(), org, userId],
      );
      if (inserted.length === 0) return false;
      await em.execute('update contacts.segment set member_count = member_count + 1 where id = ?', [segment.id]);
      return true;
    });
  }

  /**
   * Removes `recordId` from static segment `segmentId`; idempotent (false when it was no member).
   * A member whose record was deleted since can still be removed; a non-member must be a live
   * record of the organization and object (422 `SEGMENT_MEMBER_NOT_FOUND` otherwise, as for
   * {@link addMember}). Emits `crm.contacts.segment.member_removed`.
   */
  async removeMember(segmentId: string, recordId: string): Promise<boolean> {
    return this.#membership('removed', segmentId, recordId, async (em, segment, org) => {
      const deleted = await em.execute<{ record_id: string }[]>(
        'delete from contacts.segment_member where organization_id = ? and segment_id = ? and record_id = ? returning record_id',
        [org, segment.id, recordId.toLowerCase()],
      );
      if (deleted.length === 0) {
        if (!(await this.#isLiveRecord(em, segment.object, recordId, org))) throw memberNotFound(segment.object, recordId);
        return false;
      }
      await em.execute('update contacts.segment set member_count = greatest(member_count - 1, 0) where id = ?', [segment.id]);
      return true;
    });
  }

  /**
   * One membership change in one transaction: write role, the segment locked (`for no key
   * update`: concurrent changes of one segment queue, so its count stays exact), live, of the
   * caller's organization (404 otherwise) and static (422); then `change`, and its event when it
   * changed something.
   */
  async #membership(
    kind: 'added' | 'removed',
    segmentId: string,
    recordId: string,
    change: (em: EntityManager, segment: { id: string; object: SegmentObjectName }, org: string, userId: string) => Promise<boolean>,
  ): Promise<boolean> {
    const ctx = requireContext();
    assertWriteRole(segmentRecord, ctx);
    return requestEntityManager(this.#orm).transactional(async (em) => {
      const rows = isUuid(segmentId)
        ? await em.execute<{ id: string; object: SegmentObjectName; kind: string }[]>(
            'select id, object, kind from contacts.segment where id = ? and organization_id = ? and deleted_at is null for no key update',
            [segmentId, ctx.organizationId],
          )
        : [];
      const segment = rows[0];
      if (!segment) throw notFound('segment', segmentId);
      if (segment.kind !== 'static') {
        throw new DomainError(
          'rule_violation',
          'SEGMENT_NOT_STATIC',
          'members of a dynamic segment follow its criteria; only static segments take members by hand',
        );
      }
      const changed = await change(em, segment, ctx.organizationId, ctx.userId);
      if (changed) recordEvents(em, '/crm/contacts-svc', [memberEvent(segment.id, recordId.toLowerCase(), segment.object, kind)]);
      return changed;
    });
  }

  /**
   * `row` with `memberCount` counted, as a copy: a static segment's live members (a member whose
   * record was deleted since is neither listed nor counted), a dynamic segment's matching live
   * records when its criteria hold (else unset).
   */
  async #counted(row: SegmentRow): Promise<SegmentRow> {
    if (!row.object) return row;
    const org = requireContext().organizationId;
    if (row.kind === 'static') {
      const [live] = await this.#query<{ n: number }>(
        `select count(*)::int as n from contacts.segment_member m
         join ${TABLES[row.object]} r on r.id = m.record_id and r.organization_id = m.organization_id and r.deleted_at is null
         where m.organization_id = $1 and m.segment_id = $2`,
        [org, row.id],
      );
      return Object.assign(Object.create(Object.getPrototypeOf(row) as object) as SegmentRow, row, { memberCount: live?.n ?? 0 });
    }
    if (row.kind !== 'dynamic') return row;
    const definitions = await activeDefinitions(requestEntityManager(this.#orm), org, row.object);
    const checked = checkCriteria(row.criteria, { object: row.object, definitions });
    const memberCount = 'criteria' in checked ? await this.#count(org, row.object, checked.criteria) : null;
    return Object.assign(Object.create(Object.getPrototypeOf(row) as object) as SegmentRow, row, { memberCount });
  }

  /** Criteria checked again against today's definitions: INVALID_ARGUMENT (preview) or 422 `SEGMENT_CRITERIA_INVALID` (saved segments). */
  async #evaluable(object: SegmentObjectName, criteria: unknown, kind: 'invalid_argument' | 'rule_violation'): Promise<CheckedCriteria> {
    const org = requireContext().organizationId;
    const checked = checkCriteria(criteria, { object, definitions: await activeDefinitions(requestEntityManager(this.#orm), org, object) });
    if ('criteria' in checked) return checked.criteria;
    const errors: FieldViolation[] = checked.errors;
    if (kind === 'invalid_argument') throw new DomainError(kind, 'VALIDATION_FAILED', 'invalid segment criteria', errors);
    throw new DomainError(kind, 'SEGMENT_CRITERIA_INVALID', 'the segment’s criteria no longer hold (a custom field changed?): update them', errors);
  }

  /** Live records of `org` matching `criteria`: their count. */
  async #count(org: string, object: SegmentObjectName, criteria: CheckedCriteria): Promise<number> {
    const { values, bind } = binder(org);
    const where = compileCriteria(criteria, bind);
    const rows = await this.#query<{ n: number }>(
      `select count(*)::int as n from ${TABLES[object]} r where r.organization_id = $1 and r.deleted_at is null and ${where}`,
      values,
    );
    return rows[0]?.n ?? 0;
  }

  /** Ids of live records of `org` matching `criteria`, after `after`, by id, at most `limit`. */
  #matchingIds(org: string, object: SegmentObjectName, criteria: CheckedCriteria, after: string | undefined, limit: number): Promise<{ id: string }[]> {
    const { values, bind } = binder(org);
    const where = compileCriteria(criteria, bind);
    const from = after ? ` and r.id > ${bind(after)}` : '';
    return this.#query<{ id: string }>(
      `select r.id from ${TABLES[object]} r where r.organization_id = $1 and r.deleted_at is null and ${where}${from} order by r.id limit ${bind(limit)}`,
      values,
    );
  }

  /** A keyset page of member ids (`fetch`), then the records themselves, in id order. */
  async #page(
    object: SegmentObjectName,
    page: { pageSize?: number | undefined; cursor?: string | undefined },
    fetch: (after: string | undefined, limit: number) => Promise<{ id: string }[]>,
  ): Promise<MemberPage> {
    const { items, nextCursor } = await keysetPageById(page, fetch);
    const ids = items.map((i) => i.id);
    const service = object === 'company' ? this.#companies : this.#contacts;
    const entity = object === 'company' ? CompanyEntity : ContactEntity;
    const rows = ids.length ? await requestEntityManager(this.#orm).find(entity, { id: { $in: ids } }) : [];
    const byId = new Map(rows.map((r) => [r.id, r]));
    const records = ids.flatMap((id) => {
      const row = byId.get(id);
      return row ? [service.toMessage(row as never)] : [];
    });
    return { object, records, nextCursor };
  }

  async #isLiveRecord(em: EntityManager, object: SegmentObjectName, recordId: string, org: string): Promise<boolean> {
    if (!isUuid(recordId)) return false;
    const rows = await em.execute<{ id: string }[]>(`select id from ${TABLES[object]} where id = ? and organization_id = ? and deleted_at is null`, [
      recordId,
      org,
    ]);
    return rows.length > 0;
  }

  /** A read statement with `$n` placeholders on the ORM's pool (the criteria's SQL binds that way). */
  async #query<T>(sql: string, values: unknown[]): Promise<T[]> {
    this.#pool ??= this.#orm.em.getConnection().getNativeClient() as Promise<pg.Pool>;
    const { rows } = await (await this.#pool).query(sql, values);
    return rows as T[];
  }
}

function memberNotFound(object: SegmentObjectName, recordId: string): DomainError {
  return new DomainError('rule_violation', 'SEGMENT_MEMBER_NOT_FOUND', `no live ${object} ${recordId} in this organization`, [
    { field: 'recordId', message: `not a live ${object} of the organization` },
  ]);
}

function memberEvent(segmentId: string, recordId: string, object: SegmentObjectName, kind: 'added' | 'removed'): PendingEvent {
  const message = { segmentId, recordId, object: toProto(segmentRecord.fields.object, object) as number };
  const codec = kind === 'added' ? segmentsEventsV1.SegmentMemberAdded : segmentsEventsV1.SegmentMemberRemoved;
  return {
    subject: `crm.contacts.segment.member_${kind}`,
    dataSchema: `crm.events.v1.SegmentMember${kind === 'added' ? 'Added' : 'Removed'}`,
    aggregateId: segmentId,
    data: codec.encode(message as never).finish(),
  };
}
