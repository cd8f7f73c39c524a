import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { newId, type ServiceHandle } from '@crm/platform';
import { asAdminOf, organizationId, serviceEnv, startTestInfra, type TestInfra } from '@crm/testing';
import { configSchema, createContactsService, drainDuplicateScan } from '../src/app.ts';
import { companyService } from '../src/company/company.service.ts';
import { contactService } from '../src/contact/contact.service.ts';
import { ARM_LIMIT, findDuplicateCandidates, PAIR_FLOOR } from '../src/duplicate/duplicate.candidates.ts';
import { SCAN_MAX_ATTEMPTS } from '../src/duplicate/duplicate.scan.ts';

/*
 * The duplicate scan queue against a batch that always fails (a fault injected with a real
 * Postgres trigger): the entry is retried alone, parked after SCAN_MAX_ATTEMPTS failures with its
 * error, and everything queued with it or after it — same organization or not — is scanned.
 */

let infra: TestInfra;
let contacts: ServiceHandle;
let db: pg.Client;
const POISON = newId();

beforeAll(async () => {
  infra = await startTestInfra();
  contacts = await createContactsService(configSchema.parse(serviceEnv(infra)));
  db = new pg.Client({ connectionString: infra.databaseUrl });
  await db.connect();
  // claiming (deleting) a queue entry that names POISON fails, whoever claims it
  await db.query(`create function contacts.poison_scan() returns trigger language plpgsql as $$
    begin raise exception 'poisoned scan entry'; end $$`);
  await db.query(
    `create trigger poison_scan before delete on contacts.duplicate_scan_queue for each row
     when (old.record_ids @> array['${POISON}']::uuid[]) execute function contacts.poison_scan()`,
  );
});

afterAll(async () => {
  await db?.end();
  await contacts?.close();
  await infra?.close();
});

describe('the duplicate scan queue', () => {
  it('parks an entry that keeps failing, and still scans what was queued with it and after it', async () => {
    const acme = organizationId('acme');
    // the poisoned entry is the oldest of its organization, queued together with a good one
    await db.query(
      `insert into contacts.duplicate_scan_queue (organization_id, object, record_ids, queued_at)
       values ($1, 'contact', array[$2]::uuid[], clock_timestamp() - interval '1 hour')`,
      [acme, POISON],
    );
    const t = newId().slice(-8);
    const [a, b] = await asAdminOf('acme', async () => {
      const co = await companyService(contacts.orm).create({ name: `Scan Co ${t}` });
      const first = await contactService(contacts.orm).create({ firstName: 'Parker', lastName: `Queue${t}`, companyId: co.id });
      const second = await contactService(contacts.orm).create({ firstName: 'Parker', lastName: `Queue${t}`, companyId: co.id });
      return [first, second];
    });
    const other = await asAdminOf('globex', async () => {
      const co = await companyService(contacts.orm).create({ name: `Scan Co ${t}` });
      const x = await contactService(contacts.orm).create({ firstName: 'Parker', lastName: `Queue${t}`, companyId: co.id });
      const y = await contactService(contacts.orm).create({ firstName: 'Parker', lastName: `Queue${t}`, companyId: co.id });
      return [x.id, y.id].sort();
    });

    await drainDuplicateScan(contacts.orm);

    const { rows: parked } = await db.query<{ attempts: number; last_error: string; parked_at: Date | null }>(
      'select attempts, last_error, parked_at from contacts.duplicate_scan_queue where record_ids @> array[$1]::uuid[]',
      [POISON],
    );
    expect(parked).toEqual([{ attempts: SCAN_MAX_ATTEMPTS, last_error: expect.stringContaining('poisoned scan entry'), parked_at: expect.any(Date) }]);
    // nothing else is left queued, and both organizations' pairs are stored
    const { rows: left } = await db.query('select id from contacts.duplicate_scan_queue where parked_at is null');
    expect(left).toEqual([]);
    const { rows: pairs } = await db.query<{ ids: string }>(
      `select record_id::text || ',' || duplicate_id::text as ids from contacts.duplicate_pair where record_id = any($1::uuid[]) order by 1`,
      [[a.id, b.id, ...other]],
    );
    expect(pairs.map((p) => p.ids).sort()).toEqual([[a.id, b.id].sort().join(), other.join()].sort());
  });

  it('bounds a value shared by many records: a switchboard phone on 400 contacts stores no pairs and each arm returns at most ARM_LIMIT hits', async () => {
    const org = organizationId('globex');
    const phone = `+1646${String(Math.floor(Math.random() * 10_000_000)).padStart(7, '0')}`;
    const t = newId().slice(-8);
    // 400 contacts of one organization on one number: copies of one made through the service,
    // written in one statement (the queue trigger fires once)
    const model = await asAdminOf('globex', () => contactService(contacts.orm).create({ firstName: 'Switch', lastName: `Board${t}`, phone }));
    await db.query(
      `insert into contacts.contact
       select (jsonb_populate_record(c, jsonb_build_object('id', gen_random_uuid(), 'last_name', 'Board' || $2 || n))).*
       from contacts.contact c, generate_series(1, 399) n where c.id = $1`,
      [model.id, t],
    );
    const started = performance.now();
    await drainDuplicateScan(contacts.orm);
    const ms = performance.now() - started;
    const { rows: stored } = await db.query<{ n: string }>(
      `select count(*) as n from contacts.duplicate_pair p join contacts.contact c on c.id = p.record_id where c.phone = $1 and p.organization_id = $2`,
      [phone, org],
    );
    // a shared phone alone scores 40, below the floor of stored pairs
    expect(PAIR_FLOOR).toBeGreaterThan(40);
    expect(Number(stored[0]!.n)).toBe(0);
    // the on-demand check still finds them, bounded by the arm's limit
    const found = await asAdminOf('globex', () =>
      findDuplicateCandidates(contacts.orm.em.fork(), 'contact', { phone }, { organizationId: org, minScore: 1, limit: 10_000 }),
    );
    expect(found.length).toBe(ARM_LIMIT);
    expect(ms).toBeLessThan(30_000);
  });
});
