import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MikroORM } from '@mikro-orm/postgresql';
import type { EntitySchema } from '@mikro-orm/core';
import type { RecordDeclaration } from '@crm/contracts';
import {
  createLogger,
  DomainError,
  isUuid,
  keysetPageById,
  openDatabase,
  RECORD_EMBEDDABLES,
  RecordReader,
  recordEntity,
  RecordService,
  requestEntityManager,
  runWithContext,
  searchSetupSql,
  type Orm,
  type RecordListQuery,
  type RequestContext,
  type StoredRow,
} from '@crm/platform';
import { createDatabase, dropDatabase } from '@crm/dev/infra';
import { organizationId, POSTGRES_ADMIN_URL } from '@crm/testing';
import { contactsSchema } from '../src/app.ts';
import { CompanyEntity, companyService } from '../src/company/company.service.ts';
import { ContactEntity, contactService } from '../src/contact/contact.service.ts';

/*
 * The records kit's lean read path (libs/platform/src/records/record-reader.ts) against the ORM
 * path it replaces: the same record messages and values for every field kind, the same pages for
 * every list shape, and the same tenant isolation (another tenant's or a deleted id is NOT_FOUND,
 * lists never show them).
 */

const dbName = `crm_test_reads_${randomBytes(5).toString('hex')}`;
let databaseUrl: string;
let orm: Orm;

const ctxOf = (alias: string): RequestContext => ({ organizationId: organizationId(alias), userId: `admin-of-${alias}`, roles: ['crm-admin'], requestId: 'r' });
const as = <T>(alias: string, fn: () => Promise<T>): Promise<T> => runWithContext(ctxOf(alias), fn);

/** What the ORM path returns for a get: the tenant- and live-filtered entity, or NOT_FOUND. */
async function ormGet(service: RecordService<never>, entity: EntitySchema<StoredRow>, id: string): Promise<Record<string, unknown> | 'NOT_FOUND'> {
  // the ORM path's #load: a malformed id never reaches Postgres
  const row = isUuid(id) ? await requestEntityManager(ormOf(service)).findOne(entity, { id }) : null;
  return row ? service.toMessage(row as never) : 'NOT_FOUND';
}

/** What the ORM path returns for a list page (the code the lean path replaced). */
async function ormList(service: RecordService<never>, entity: EntitySchema<StoredRow>, q: RecordListQuery, where: Record<string, unknown>) {
  const em = requestEntityManager(ormOf(service));
  const page = await keysetPageById(q, (after, limit) =>
    em.find(entity, { ...where, ...(after ? { id: { $gt: after } } : {}) }, { orderBy: { id: 'asc' }, limit }),
  );
  return { items: page.items.map((r) => service.toMessage(r as never)), nextCursor: page.nextCursor };
}

const orms = new Map<RecordService<never>, Orm>();
const ormOf = (service: RecordService<never>): Orm => orms.get(service) ?? orm;

async function leanGet(service: RecordService<never>, id: string): Promise<Record<string, unknown> | 'NOT_FOUND'> {
  try {
    return service.toMessage(await service.get(id));
  } catch (error) {
    if (error instanceof DomainError && error.kind === 'not_found') return 'NOT_FOUND';
    throw error;
  }
}

async function leanList(service: RecordService<never>, q: RecordListQuery) {
  const page = await service.list(q);
  return { items: page.items.map((r) => service.toMessage(r as never)), nextCursor: page.nextCursor };
}

beforeAll(async () => {
  databaseUrl = await createDatabase(POSTGRES_ADMIN_URL, dbName);
  orm = await openDatabase({ clientUrl: databaseUrl, ...contactsSchema, logger: createLogger('record-reads', 'silent') });
});

afterAll(async () => {
  await orm?.close();
  for (const o of orms.values()) await o.close();
  await dropDatabase(POSTGRES_ADMIN_URL, dbName);
});

describe('records kit: lean reads of companies and contacts', () => {
  it('answer gets exactly as the ORM path, and NOT_FOUND for deleted, foreign and malformed ids', async () => {
    const companies = companyService(orm) as unknown as RecordService<never>;
    const contacts = contactService(orm) as unknown as RecordService<never>;
    const parent = await as('acme', () => companyService(orm).create({ name: 'Parent', industry: 'retail' }));
    const full = await as('acme', () =>
      companyService(orm).create({
        name: 'Full Co',
        domain: 'full.example',
        industry: 'software',
        parentCompanyId: parent.id,
        employees: 120,
        annualRevenue: { amount: '1250000.5', currency: 'EUR' },
        address: { street: 'Main St 1', city: 'Berlin', region: null, postalCode: '10115', country: 'DE' },
      }),
    );
    const partial = await as('acme', () => companyService(orm).create({ name: 'Partial', address: { city: 'Oslo' } }));
    const gone = await as('acme', () => companyService(orm).create({ name: 'Gone' }));
    await as('acme', () => companyService(orm).delete(gone.id));
    const foreign = await as('globex', () => companyService(orm).create({ name: 'Globex Co', industry: 'software' }));
    const person = await as('acme', () =>
      contactService(orm).create({ firstName: 'Ada', lastName: 'Lovelace', email: 'ada@example.com', phone: '+44 20 7946 0000', companyId: full.id }),
    );

    for (const id of [parent.id, full.id, partial.id, gone.id, foreign.id, 'not-a-uuid', '0190b4a0-0000-7000-8000-000000000099']) {
      for (const alias of ['acme', 'globex']) {
        const lean = await as(alias, () => leanGet(companies, id));
        expect({ id, alias, lean }).toEqual({ id, alias, lean: await as(alias, () => ormGet(companies, CompanyEntity, id)) });
      }
    }
    expect(await as('acme', () => leanGet(companies, gone.id))).toBe('NOT_FOUND');
    expect(await as('acme', () => leanGet(companies, foreign.id))).toBe('NOT_FOUND');
    expect(await as('globex', () => leanGet(companies, foreign.id))).toMatchObject({ id: foreign.id, name: 'Globex Co' });
    expect(await as('acme', () => leanGet(companies, full.id))).toMatchObject({
      annualRevenue: { amount: '1250000.50', currency: 'EUR' },
      address: { street: 'Main St 1', city: 'Berlin', region: '', postalCode: '10115', country: 'DE' },
      parentCompanyId: parent.id,
      employees: 120,
    });
    for (const alias of ['acme', 'globex']) {
      expect(await as(alias, () => leanGet(contacts, person.id))).toEqual(await as(alias, () => ormGet(contacts, ContactEntity, person.id)));
    }
    // the values of a lean row are the ORM row's, field by field
    const leanRow = await as('acme', () => companyService(orm).get(full.id));
    const ormRow = (await as('acme', () => requestEntityManager(orm).findOne(CompanyEntity, { id: full.id })))!;
    expect(companyService(orm).toValues(leanRow)).toEqual(companyService(orm).toValues(ormRow as never));
    expect([leanRow.createdAt, leanRow.updatedAt, leanRow.createdBy, leanRow.version]).toEqual([
      ormRow.createdAt,
      ormRow.updatedAt,
      ormRow.createdBy,
      ormRow.version,
    ]);
  });

  it('answer lists exactly as the ORM path: filters, search, paging, and only the caller’s live records', async () => {
    const companies = companyService(orm) as unknown as RecordService<never>;
    const parent = await as('acme', () => companyService(orm).create({ name: 'Holding 100%_x', industry: 'finance' }));
    for (let i = 0; i < 5; i++) await as('acme', () => companyService(orm).create({ name: `Sub ${i}`, industry: 'finance', parentCompanyId: parent.id }));
    await as('globex', () => companyService(orm).create({ name: 'Sub of globex', industry: 'finance' }));
    const deleted = await as('acme', () => companyService(orm).create({ name: 'Sub deleted', industry: 'finance', parentCompanyId: parent.id }));
    await as('acme', () => companyService(orm).delete(deleted.id));

    const cases: { q: RecordListQuery; where: Record<string, unknown> }[] = [
      { q: {}, where: {} },
      { q: { filters: { industry: 'finance' } }, where: { industry: 'finance' } },
      { q: { filters: { parentCompanyId: parent.id } }, where: { parentCompanyId: parent.id } },
      { q: { query: 'sub' }, where: { $or: [{ name: { $ilike: '%sub%' } }] } },
      { q: { query: '100%_' }, where: { $or: [{ name: { $ilike: '%100\\%\\_%' } }] } },
      { q: { filters: { industry: 'finance' }, query: 'SUB 1' }, where: { industry: 'finance', $or: [{ name: { $ilike: '%SUB 1%' } }] } },
    ];
    for (const alias of ['acme', 'globex']) {
      for (const { q, where } of cases) {
        for (const pageSize of [undefined, 2]) {
          let cursor: string | undefined;
          do {
            const query = { ...q, pageSize, cursor };
            const lean = await as(alias, () => leanList(companies, query));
            expect({ alias, query, lean }).toEqual({ alias, query, lean: await as(alias, () => ormList(companies, CompanyEntity, query, where)) });
            cursor = lean.nextCursor;
          } while (cursor);
        }
      }
    }
    const subs = await as('acme', () => leanList(companies, { filters: { parentCompanyId: parent.id } }));
    expect(subs.items.map((c) => c['name'])).toEqual(['Sub 0', 'Sub 1', 'Sub 2', 'Sub 3', 'Sub 4']);
    expect(await as('acme', () => leanList(companies, { filters: { parentCompanyId: 'not-a-uuid' } }))).toEqual({ items: [], nextCursor: undefined });
    await expect(as('acme', () => companies.list({ pageSize: 500 }))).rejects.toMatchObject({ code: 'INVALID_PAGE_SIZE' });
    await expect(as('acme', () => companies.list({ cursor: 'nope' }))).rejects.toMatchObject({ code: 'INVALID_CURSOR' });
  });

  it('refuse to run without a request context', async () => {
    await expect(companyService(orm).get('0190b4a0-0000-7000-8000-000000000099')).rejects.toMatchObject({ code: 'NO_REQUEST_CONTEXT' });
    await expect(companyService(orm).list({})).rejects.toMatchObject({ code: 'NO_REQUEST_CONTEXT' });
  });
});

describe('records kit: lean reads of every field kind', () => {
  const codec = { encode: () => ({ finish: () => new Uint8Array() }), decode: () => ({}) };
  const gadget = {
    name: 'gadget',
    plural: 'gadgets',
    domain: 'test',
    softDelete: false,
    service: {},
    events: { created: codec, updated: codec, deleted: codec },
    fields: {
      title: { kind: 'text', max: 100, required: true, search: true },
      email: { kind: 'email', filter: true },
      count: { kind: 'int', min: 0, filter: true },
      ratio: { kind: 'decimal', precision: 10, scale: 3, filter: true },
      stage: { kind: 'enum', values: { STAGE_UNSPECIFIED: 0, STAGE_OPEN: 1, STAGE_DONE: 2 }, filter: true },
      parentId: { kind: 'ref', to: 'Gadget', filter: true },
      ownerId: { kind: 'owner' },
      price: { kind: 'money' },
      due: { kind: 'date', filter: true },
      seenAt: { kind: 'timestamp' },
      active: { kind: 'bool', filter: true },
      address: { kind: 'address' },
      extra: { kind: 'json' },
      labels: { kind: 'tags' },
    },
  } as unknown as RecordDeclaration;
  let kinds: Orm;
  let service: RecordService<never>;
  let entity: EntitySchema<StoredRow>;

  beforeAll(async () => {
    entity = recordEntity(gadget);
    kinds = await MikroORM.init({
      clientUrl: databaseUrl,
      schema: 'kinds',
      entities: [entity, ...RECORD_EMBEDDABLES],
      allowGlobalContext: false,
      forceUtcTimezone: true,
      debug: false,
    });
    await kinds.em.getConnection().execute('create schema if not exists kinds');
    await kinds.em.transactional(async (em) => {
      for (const sql of searchSetupSql('kinds')) await em.getConnection().execute(sql, [], 'run', em.getTransactionContext());
    });
    await kinds.schema.create();
    service = new RecordService(kinds, gadget, entity) as unknown as RecordService<never>;
    orms.set(service, kinds);
  });

  it('hydrate each kind to the ORM’s value', async () => {
    const org = organizationId('acme');
    const em = kinds.em.fork();
    em.setFilterParams('tenant', { organizationId: org });
    const now = new Date('2026-03-04T05:06:07.891Z');
    const system = { organizationId: org, createdAt: now, updatedAt: now, createdBy: 'u', version: 1 };
    const empty = em.create(entity, { id: '0190b4a0-0000-7000-8000-000000000001', title: 'Empty', ownerId: 'u', active: false, ...system });
    const full = em.create(entity, {
      id: '0190b4a0-0000-7000-8000-000000000002',
      title: 'Full',
      email: 'a@b.example',
      count: 3,
      ratio: '12.345',
      stage: 'open',
      parentId: empty.id,
      ownerId: 'u',
      price: { amount: '9.5', currency: 'USD' },
      due: '2026-12-31',
      seenAt: new Date('2026-01-02T03:04:05.678Z'),
      active: true,
      address: { street: null, city: 'Rome', region: null, postalCode: null, country: 'IT' },
      extra: { nested: { a: [1, 'two'] }, ok: true },
      ...system,
    });
    await em.flush();
    for (const id of [empty.id, full.id]) {
      const lean = await as('acme', () => leanGet(service, id));
      expect(lean).toEqual(await as('acme', () => ormGet(service, entity, id)));
      expect(await as('globex', () => leanGet(service, id))).toBe('NOT_FOUND');
    }
    const leanFull = await as('acme', () => service.get(full.id));
    const ormFull = (await as('acme', () => requestEntityManager(kinds).findOne(entity, { id: full.id })))!;
    expect(service.toValues(leanFull)).toEqual(service.toValues(ormFull as never));
    expect(service.toValues(leanFull)).toMatchObject({ ratio: '12.345', due: '2026-12-31', seenAt: new Date('2026-01-02T03:04:05.678Z'), active: true });
    for (const [filters, where] of [
      [{ count: 3 }, { count: 3 }],
      [{ ratio: '12.345' }, { ratio: '12.345' }],
      [{ stage: 'open' }, { stage: 'open' }],
      [{ due: '2026-12-31' }, { due: '2026-12-31' }],
      [{ active: false }, { active: false }],
      [{ email: 'a@b.example' }, { email: 'a@b.example' }],
      [{ parentId: empty.id }, { parentId: empty.id }],
    ] as [Record<string, unknown>, Record<string, unknown>][]) {
      const q = { filters };
      expect({ filters, lean: await as('acme', () => leanList(service, q)) }).toEqual({
        filters,
        lean: await as('acme', () => ormList(service, entity, q, where)),
      });
    }
  });
  it('store each kind through the lean insert as the unit of work reads it back', async () => {
    const org = organizationId('acme');
    const reader = RecordReader.of(kinds, entity, false)!;
    const now = new Date('2026-03-04T05:06:07.891Z');
    const values = {
      id: '0190b4a0-0000-7000-8000-0000000000a1',
      title: 'Lean',
      email: 'lean@b.example',
      count: 7,
      ratio: '1.5',
      stage: 'done',
      parentId: null,
      ownerId: 'u',
      price: { amount: '1250.0000', currency: 'EUR' },
      due: '2026-02-28',
      seenAt: new Date('2026-01-02T03:04:05.678Z'),
      active: true,
      address: { street: 'Via Roma 1', city: 'Rome', region: null, postalCode: '00100', country: 'IT' },
      extra: { quote: 'it\'s "quoted" ? $1', list: [1, 'two', null] },
      labels: ['0190b4a0-0000-7000-8000-0000000000b1', '0190b4a0-0000-7000-8000-0000000000b2'],
      organizationId: org,
      createdAt: now,
      updatedAt: now,
      createdBy: 'u',
      version: 1,
    };
    const inserted = await kinds.em.fork().transactional((em) => reader.insert(em, values));
    const em = kinds.em.fork();
    em.setFilterParams('tenant', { organizationId: org });
    const read = await em.findOneOrFail(entity, { id: values.id });
    // what the insert returned, what the ORM reads and what was written are the same values
    expect(service.toValues(inserted as never)).toEqual(service.toValues(read as never));
    expect(service.toValues(read as never)).toMatchObject({
      ratio: '1.500',
      price: { amount: '1250.00', currency: 'EUR' },
      seenAt: values.seenAt,
      address: values.address,
      extra: values.extra,
      labels: values.labels,
      stage: 'done',
    });
    expect([read.createdAt, read.version, read.organizationId]).toEqual([now, 1, org]);
  });
});
