import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { companyRecord, contactRecord, contactsV1 } from '@crm/contracts';
import { callUnary, constraintError, DomainError, insecure, newId, type ServiceHandle } from '@crm/platform';
import { asAdminOf, organizationId, serviceEnv, startTestInfra, type TestInfra } from '@crm/testing';
import { configSchema, createContactsService } from '../src/app.ts';

let infra: TestInfra;
let contacts: ServiceHandle;
let companies: contactsV1.CompanyServiceClient;

beforeAll(async () => {
  infra = await startTestInfra();
  contacts = await createContactsService(configSchema.parse(serviceEnv(infra)));
  companies = new contactsV1.CompanyServiceClient(`127.0.0.1:${contacts.grpcPort}`, insecure());
});

afterAll(async () => {
  companies?.close();
  await contacts?.close();
  await infra?.close();
});

const blank = contactsV1.Company.fromPartial({});

async function create(name: string): Promise<contactsV1.Company> {
  const res = await asAdminOf('acme', () => callUnary(companies, companies.createCompany, { company: { ...blank, name } }));
  return res.company!;
}

function update(company: Partial<contactsV1.Company> & { id: string }, updateMask: string[]): Promise<contactsV1.UpdateCompanyResponse> {
  return asAdminOf('acme', () => callUnary(companies, companies.updateCompany, { company: { ...blank, ...company }, updateMask }));
}

async function outboxCount(aggregateId: string): Promise<number> {
  const [row] = await contacts.orm.em.fork().execute<{ n: string }[]>('select count(*) as n from contacts.outbox where aggregate_id = ?', [aggregateId]);
  return Number(row?.n);
}

async function rejection(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error('expected a DomainError');
}

describe('records kit: updates', () => {
  it('validates only the fields being changed, so a tightened rule never blocks an unrelated change', async () => {
    const company = await create('Legacy Data Ltd');
    // a value stored before today's domain rule existed
    await contacts.orm.em.fork().execute('update contacts.company set domain = ? where id = ?', ['Not A Domain', company.id]);
    const res = await update({ id: company.id, industry: 'retail' }, ['industry']);
    expect(res.company).toMatchObject({ industry: 'retail', domain: 'Not A Domain' });
    const bad = await rejection(update({ id: company.id, domain: 'still not a domain' }, ['domain']));
    expect(bad).toMatchObject({ kind: 'invalid_argument', violations: [{ field: 'domain' }] });
  });

  it('stores nothing and emits nothing when the change changes nothing', async () => {
    const company = await create('Idle Corp');
    const events = await outboxCount(company.id);
    const res = await update({ id: company.id, name: '  Idle Corp ' }, ['name']);
    expect(res.company?.audit?.version).toBe('1');
    expect(await outboxCount(company.id)).toBe(events);
  });

  it('refuses an update mask naming an unknown or no field', async () => {
    const company = await create('Masked Inc');
    expect(await rejection(update({ id: company.id }, ['nickname']))).toMatchObject({ code: 'INVALID_UPDATE_MASK', violations: [{ field: 'nickname' }] });
    expect(await rejection(update({ id: company.id }, []))).toMatchObject({ code: 'INVALID_UPDATE_MASK' });
  });
});

describe('records kit: constraint violations name the field, never a 500', () => {
  async function violation(sql: string, params: unknown[]): Promise<unknown> {
    try {
      await contacts.orm.em.fork().execute(sql, params);
    } catch (error) {
      return error;
    }
    throw new Error('expected the database to refuse');
  }
  const org = organizationId('acme');
  const row = (extra: string, values: unknown[]) =>
    [
      `insert into contacts.company (id, organization_id, name, owner_id, created_at, updated_at, created_by${extra}) values (?, ?, 'x', 'u', now(), now(), 'u'${extra ? ', ?' : ''})`,
      [newId(), org, ...values],
    ] as const;

  it('maps a foreign key to 422 <FIELD>_NOT_FOUND', async () => {
    const [sql, params] = row(', parent_company_id', [newId()]);
    expect(constraintError(companyRecord, await violation(sql, [...params]))).toMatchObject({
      kind: 'rule_violation',
      code: 'PARENT_COMPANY_NOT_FOUND',
      violations: [{ field: 'parentCompanyId' }],
    });
  });

  it('maps a check to 422 <FIELD>_INVALID', async () => {
    const [sql, params] = row(', employees', [-5]);
    expect(constraintError(companyRecord, await violation(sql, [...params]))).toMatchObject({
      kind: 'rule_violation',
      code: 'EMPLOYEES_INVALID',
      violations: [{ field: 'employees' }],
    });
  });

  it('maps each unique index to its declared conflict code', async () => {
    const [sql, params] = row(', domain', ['twice.example']);
    await contacts.orm.em.fork().execute(sql, [...params]);
    const [again, againParams] = row(', domain', ['twice.example']);
    expect(constraintError(companyRecord, await violation(again, [...againParams]))).toMatchObject({
      kind: 'conflict',
      code: 'COMPANY_DOMAIN_TAKEN',
      violations: [{ field: 'domain' }],
    });
    expect(constraintError(contactRecord, new Error('not a constraint'))).toBeUndefined();
  });
});

describe('records kit: foreign keys', () => {
  it("have an index Postgres can use to check a deleted target's referencing rows", async () => {
    const em = contacts.orm.em.fork();
    await em.transactional(async (tx) => {
      await tx.execute('set local enable_seqscan = off');
      for (const [table, column, index] of [
        ['contact', 'company_id', 'contact_company_id_ref_idx'],
        ['company', 'parent_company_id', 'company_parent_company_id_ref_idx'],
      ]) {
        // the lookup Postgres runs for `on delete no action` when a company row goes
        const plan = await tx.execute<{ 'QUERY PLAN': string }[]>(`explain select 1 from contacts.${table} where ${column} = ?`, [newId()]);
        expect(plan.map((r) => r['QUERY PLAN']).join('\n')).toContain(index);
      }
    });
  });
});

describe('records kit: list queries from any gRPC caller', () => {
  // (a lone surrogate cannot cross protobuf: the UTF-8 encoder sends U+FFFD instead)
  it('refuse a search term with NUL, which Postgres cannot take, with INVALID_ARGUMENT naming q, never an internal error', async () => {
    for (const query of ['a\u0000b', '\u0000']) {
      const refused = await asAdminOf('acme', () => callUnary(companies, companies.listCompanies, contactsV1.ListCompaniesRequest.fromPartial({ query }))).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(DomainError);
      expect(refused).toMatchObject({ kind: 'invalid_argument', violations: [{ field: 'q' }] });
    }
  });
});
