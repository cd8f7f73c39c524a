import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DeadlockException } from '@mikro-orm/core';
import { companyRecord, contactRecord } from '@crm/contracts';
import { DomainError, RecordService, WRITE_ATTEMPTS, type RecordHooks, type ServiceHandle } from '@crm/platform';
import { asAdminOf, serviceEnv, startTestInfra, type TestInfra } from '@crm/testing';
import { configSchema, createContactsService } from '../src/app.ts';
import { CompanyEntity } from '../src/company/company.service.ts';
import { ContactEntity } from '../src/contact/contact.service.ts';

/**
 * The records kit's write path under concurrency, on the real database: writers lock their row
 * `for no key update` (foreign-key checks of other writers pass), and a transaction Postgres aborts
 * as a deadlock victim is run again. Each test's record service gets hooks that hold its writers
 * at a chosen point (after the row lock), so the interleaving is forced, not hoped for.
 */

let infra: TestInfra;
let contacts: ServiceHandle;

beforeAll(async () => {
  infra = await startTestInfra();
  contacts = await createContactsService(configSchema.parse(serviceEnv(infra)));
});

afterAll(async () => {
  await contacts?.close();
  await infra?.close();
});

type CompanyFields = typeof companyRecord.fields;

/** A promise that resolves once `parties` callers have arrived. */
function barrier(parties: number): () => Promise<void> {
  let arrived = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return () => {
    if (++arrived === parties) open();
    return opened;
  };
}

/** A company record service with `hooks` instead of the company rules, on the service's database. */
const companies = (hooks: RecordHooks<CompanyFields>) => new RecordService(contacts.orm, companyRecord, CompanyEntity, { hooks });
const asAcme = <T>(fn: () => Promise<T>): Promise<T> => asAdminOf('acme', fn);
const createCompany = (name: string) => asAcme(() => companies({}).create({ name }));

async function updatedEvents(id: string): Promise<number> {
  const [row] = await contacts.orm.em
    .fork()
    .execute<{ n: string }[]>("select count(*) as n from contacts.outbox where aggregate_id = ? and subject = 'crm.contacts.company.updated'", [id]);
  return Number(row?.n);
}

describe('records kit: row locks of writers', () => {
  it('lets two writers point their locked rows at each other: both commit, no deadlock, no retry', async () => {
    const a = await createCompany('Mutual A');
    const b = await createCompany('Mutual B');
    const bothLocked = barrier(2);
    let attempts = 0;
    const service = companies({
      beforeWrite: async () => {
        attempts++;
        await bothLocked(); // each holds its own row lock; the foreign-key checks of the flush come next
      },
    });
    const [first, second] = await Promise.all([
      asAcme(() => service.update(a.id, { parentCompanyId: b.id }, ['parentCompanyId'])),
      asAcme(() => service.update(b.id, { parentCompanyId: a.id }, ['parentCompanyId'])),
    ]);
    expect([first.parentCompanyId, second.parentCompanyId]).toEqual([b.id, a.id]);
    expect(attempts).toBe(2);
  });

  it('does not make an insert referencing a row wait for that row’s writer', async () => {
    const company = await createCompany('Busy Parent');
    let entered!: () => void;
    const writerHoldsLock = new Promise<void>((resolve) => (entered = resolve));
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => (finish = resolve));
    const slowWriter = companies({
      beforeWrite: async () => {
        entered();
        await gate;
      },
    });
    const writing = asAcme(() => slowWriter.update(company.id, { industry: 'retail' }, ['industry']));
    await writerHoldsLock;
    // with `for update` this insert's foreign-key check waited for the writer, which waits for the gate: the test would time out
    const contact = await asAcme(() =>
      new RecordService(contacts.orm, contactRecord, ContactEntity).create({ firstName: 'Ada', lastName: 'Waitless', companyId: company.id }),
    );
    expect(contact.companyId).toBe(company.id);
    finish();
    expect(await writing).toMatchObject({ industry: 'retail', version: 2 });
  }, 15_000);
});

describe('records kit: deadlock victims', () => {
  it('runs a write aborted as a deadlock victim again: both writes commit, each with one event', async () => {
    const a = await createCompany('Victim A');
    const b = await createCompany('Victim B');
    const bothLocked = barrier(2);
    let attempts = 0;
    const other = new Map([
      [a.id, b.id],
      [b.id, a.id],
    ]);
    // each writer, holding its own row, then locks the other's (`for update` conflicts with the kit's lock): a real deadlock
    const service = companies({
      beforeWrite: async ({ em, existing }) => {
        attempts++;
        await bothLocked();
        await em.execute('select 1 from contacts.company where id = ? for update', [other.get(existing!.id)]);
      },
    });
    const [first, second] = await Promise.all([
      asAcme(() => service.update(a.id, { employees: 1 }, ['employees'])),
      asAcme(() => service.update(b.id, { employees: 2 }, ['employees'])),
    ]);
    expect([first, second]).toMatchObject([
      { employees: 1, version: 2 },
      { employees: 2, version: 2 },
    ]);
    expect(attempts).toBe(3); // two first attempts, one of them aborted by Postgres and run again
    expect([await updatedEvents(a.id), await updatedEvents(b.id)]).toEqual([1, 1]);
  });

  it(`answers UNAVAILABLE WRITE_CONFLICT after ${WRITE_ATTEMPTS} aborted attempts, storing nothing`, async () => {
    const company = await createCompany('Always Colliding');
    let attempts = 0;
    const service = companies({
      beforeWrite: () => {
        attempts++;
        throw new DeadlockException(Object.assign(new Error('deadlock detected'), { code: '40P01' }));
      },
    });
    const error = await asAcme(() => service.update(company.id, { industry: 'retail' }, ['industry'])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ kind: 'unavailable', code: 'WRITE_CONFLICT' });
    expect(attempts).toBe(WRITE_ATTEMPTS);
    expect(await asAcme(() => companies({}).get(company.id))).toMatchObject({ industry: null, version: 1 });
    expect(await updatedEvents(company.id)).toBe(0);
  });
});
