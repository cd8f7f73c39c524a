import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { contactsV1, documentsEventsV1, documentV1 } from '@crm/contracts';
import { callClientStream, callUnary, connectNats, createLogger, insecure, newId, type ServiceHandle } from '@crm/platform';
import { asAdminOf, organizationId, serviceEnv, startTestInfra, type TestInfra } from '@crm/testing';
import { configSchema, createContactsService } from '../src/app.ts';
import { DocumentExpiryCheck } from '../src/document/document-expiry.worker.ts';

/**
 * The documents' expiry check (issue 8): `crm.contacts.document.expiring` once per document,
 * threshold (30, 7, 0 days) and expiry date, the nearest threshold only, none for documents of a
 * deleted company, again after `expiresOn` changed, never a farther one after a nearer one, not
 * re-read once the last is out — and exactly once with two replicas checking the same database at
 * the same time. The checks are driven directly (`runOnce(now)`, the replicas' own timers off)
 * with pinned dates; one replica with its timer on (and the database's clock) shows the wiring.
 */
let infra: TestInfra;
let replicas: ServiceHandle[];
let documents: documentV1.DocumentServiceClient;
let companies: contactsV1.CompanyServiceClient;
const ACME = organizationId('acme');
const BASE = new Date('2030-01-01T09:00:00Z');
const at = (days: number): Date => new Date(BASE.getTime() + days * 86_400_000);
const day = (days: number): string => at(days).toISOString().slice(0, 10);

beforeAll(async () => {
  infra = await startTestInfra();
  const env = { ...serviceEnv(infra), DOCUMENT_EXPIRY_CHECK_INTERVAL_MS: '0' };
  replicas = [];
  // one after the other: both run the same migrations otherwise (which is safe, but not the point here)
  for (let i = 0; i < 2; i++) replicas.push(await createContactsService(configSchema.parse(env)));
  documents = new documentV1.DocumentServiceClient(`127.0.0.1:${replicas[0]!.grpcPort}`, insecure());
  companies = new contactsV1.CompanyServiceClient(`127.0.0.1:${replicas[0]!.grpcPort}`, insecure());
});

afterAll(async () => {
  documents?.close();
  companies?.close();
  for (const r of replicas ?? []) await r.close();
  await infra?.close();
});

beforeEach(async () => {
  const em = replicas[0]!.orm.em.fork();
  await em.execute('delete from contacts.document_expiry_notice');
  await em.execute('delete from contacts.document');
  await em.execute(`delete from contacts.outbox where subject = 'crm.contacts.document.expiring'`);
});

async function company(): Promise<string> {
  const res = await asAdminOf('acme', () =>
    callUnary(companies, companies.createCompany, { company: contactsV1.Company.fromPartial({ name: `Expiry Co ${newId()}` }) }),
  );
  return res.company!.id;
}

/** Uploads a small document through the gRPC client stream. */
async function upload(companyId: string, expiresOn: string, visibility: documentV1.DocumentVisibility = 1): Promise<string> {
  async function* requests(): AsyncGenerator<documentV1.UploadDocumentRequest> {
    yield { header: { companyId, contactId: '', name: `Certificate ${expiresOn}`, documentType: 5, expiresOn, visibility, fileName: 'cert.pdf' } };
    yield { chunk: Buffer.from('%PDF-1.7\n%%EOF\n') };
  }
  const res = await asAdminOf('acme', () => callClientStream(documents, documents.uploadDocument, requests()));
  return res.document!.id;
}

async function setExpiry(id: string, expiresOn: string): Promise<void> {
  await asAdminOf('acme', () =>
    callUnary(documents, documents.updateDocument, { document: documentV1.Document.fromPartial({ id, expiresOn }), updateMask: ['expires_on'] }),
  );
}

interface Notice {
  documentId: string;
  thresholdDays: number;
  daysUntilExpiry: number;
  expiresOn: string;
  organizationId: string;
}

/** Every `expiring` event in the outbox, oldest first. */
async function notices(): Promise<Notice[]> {
  const rows = await replicas[0]!.orm.em
    .fork()
    .execute<{ payload: Buffer; headers: Record<string, string> }[]>(
      `select payload, headers from contacts.outbox where subject = 'crm.contacts.document.expiring' order by occurred_at, id`,
    );
  return rows.map((r) => {
    const e = documentsEventsV1.DocumentExpiring.decode(r.payload);
    return {
      documentId: e.document!.id,
      thresholdDays: e.thresholdDays,
      daysUntilExpiry: e.daysUntilExpiry,
      expiresOn: e.document!.expiresOn,
      organizationId: r.headers['organization-id'] ?? '',
    };
  });
}

const brief = (list: Notice[]) => list.map((n) => [n.documentId, n.thresholdDays, n.daysUntilExpiry]);

describe('document expiry check', () => {
  it('emits the nearest threshold reached, once each, and nothing for documents without expiry or of deleted companies', async () => {
    const check = new DocumentExpiryCheck(replicas[0]!.orm);
    const co = await company();
    const later = await upload(co, day(40));
    const soon = await upload(co, day(5));
    const expired = await upload(co, day(-3));
    const hidden = await upload(co, day(40), 2); // private: announced too, consumers respect visibility
    await upload(co, '');
    const gone = await company();
    await upload(gone, day(2));
    await asAdminOf('acme', () => callUnary(companies, companies.deleteCompany, { id: gone }));

    expect(await check.runOnce(at(0))).toBe(2);
    expect(brief(await notices())).toEqual([
      [expired, 0, -3],
      [soon, 7, 5],
    ]);
    expect(await check.runOnce(at(0))).toBe(0);

    expect(await check.runOnce(at(10))).toBe(3);
    expect(brief((await notices()).slice(2))).toEqual([
      [soon, 0, -5],
      [later, 30, 30],
      [hidden, 30, 30],
    ]);
    expect(await check.runOnce(at(33))).toBe(2);
    expect(await check.runOnce(at(40))).toBe(2);
    expect(await check.runOnce(at(41))).toBe(0);
    const all = await notices();
    expect(all.filter((n) => n.documentId === later).map((n) => [n.thresholdDays, n.daysUntilExpiry])).toEqual([
      [30, 30],
      [7, 7],
      [0, 0],
    ]);
    expect(new Set(all.map((n) => n.organizationId))).toEqual(new Set([ACME]));
  });

  it('fires the thresholds again for a changed expiry date, but not again for a date already announced', async () => {
    const check = new DocumentExpiryCheck(replicas[0]!.orm);
    const doc = await upload(await company(), day(20));
    expect(await check.runOnce(at(0))).toBe(1);
    await setExpiry(doc, day(25));
    expect(await check.runOnce(at(0))).toBe(1);
    await setExpiry(doc, day(20));
    expect(await check.runOnce(at(0))).toBe(0);
    expect((await notices()).map((n) => [n.expiresOn, n.thresholdDays])).toEqual([
      [day(20), 30],
      [day(25), 30],
    ]);
  });

  it('forgets a deleted document’s notices with it', async () => {
    const check = new DocumentExpiryCheck(replicas[0]!.orm);
    const doc = await upload(await company(), day(1));
    expect(await check.runOnce(at(0))).toBe(1);
    await asAdminOf('acme', () => callUnary(documents, documents.deleteDocument, { id: doc }));
    const [row] = await replicas[0]!.orm.em
      .fork()
      .execute<{ n: string }[]>('select count(*) as n from contacts.document_expiry_notice where document_id = ?', [doc]);
    expect(Number(row?.n)).toBe(0);
    expect(await check.runOnce(at(1))).toBe(0);
  });

  it('never emits a farther threshold after a nearer one of the same date (a check with a clock behind)', async () => {
    const check = new DocumentExpiryCheck(replicas[0]!.orm);
    const doc = await upload(await company(), day(10));
    expect(await check.runOnce(at(3))).toBe(1); // 7 days left: the 7-day notice
    expect(await check.runOnce(at(-5))).toBe(0); // 15 days left by an earlier "today": the 30-day one would come after the 7-day one
    expect(brief(await notices())).toEqual([[doc, 7, 7]]);
  });

  it('marks a document done with its 0-day notice, so later checks do not read it again — until its date changes', async () => {
    const check = new DocumentExpiryCheck(replicas[0]!.orm);
    const doc = await upload(await company(), day(2));
    const doneFor = async () =>
      (
        await replicas[0]!.orm.em
          .fork()
          .execute<{ done: string | null }[]>('select expiry_notices_done_for::text as done from contacts.document where id = ?', [doc])
      )[0]?.done;
    expect(await check.runOnce(at(0))).toBe(1);
    expect(await doneFor()).toBeNull();
    expect(await check.runOnce(at(2))).toBe(1);
    expect(await doneFor()).toBe(day(2));
    // with its notices gone (e.g. pruned), a check finds nothing to do for it: it is out of the scan
    await replicas[0]!.orm.em.fork().execute('delete from contacts.document_expiry_notice where document_id = ?', [doc]);
    expect(await check.runOnce(at(3))).toBe(0);
    await setExpiry(doc, day(40));
    expect(await check.runOnce(at(10))).toBe(1);
    expect(brief((await notices()).slice(-1))).toEqual([[doc, 30, 30]]);
  });

  it('emits each notice exactly once while two replicas check the same database at the same time', async () => {
    const co = await company();
    // 600 documents (three batches each) expiring from 5 days ago to 35 days ahead, straight into the table
    const count = 600;
    await replicas[0]!.orm.em.fork().execute(
      `insert into contacts.document (id, organization_id, company_id, name, document_type, expires_on, visibility, file_name, content_type,
         size_bytes, sha256, blob_key, created_at, updated_at, created_by, version)
       select gen_random_uuid(), ?, ?, 'Bulk ' || i, 'certificate', ?::date + (i % 41 - 5), 'public', 'bulk.pdf', 'application/pdf',
         1, repeat('0', 64), gen_random_uuid()::text, now(), now(), 'bulk', 1
       from generate_series(1, ?) as i`,
      [ACME, co, day(0), count],
    );
    const [a, b] = replicas.map((r) => new DocumentExpiryCheck(r.orm));
    let emitted = 0;
    for (const when of [0, 0, 10, 25, 30, 36]) {
      const [x, y] = await Promise.all([a!.runOnce(at(when)), b!.runOnce(at(when))]);
      emitted += x + y;
    }
    const all = await notices();
    const keys = all.map((n) => `${n.documentId}/${n.thresholdDays}/${n.expiresOn}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(emitted).toBe(all.length);
    // every document went through each threshold it could still reach on the checked days
    const expected = await replicas[0]!.orm.em.fork().execute<{ n: string }[]>(`select count(*) as n from contacts.document_expiry_notice`);
    expect(Number(expected[0]?.n)).toBe(all.length);
    const perDocument = new Map<string, number[]>();
    for (const n of all) perDocument.set(n.documentId, [...(perDocument.get(n.documentId) ?? []), n.thresholdDays]);
    expect(perDocument.size).toBe(count);
    for (const thresholds of perDocument.values()) expect(thresholds.at(-1)).toBe(0);
  });

  it('runs on its own in a replica with DOCUMENT_EXPIRY_CHECK_INTERVAL_MS set, by the database’s date', async () => {
    const [clock] = await replicas[0]!.orm.em.fork().execute<{ today: string }[]>(`select (now() at time zone 'utc')::date::text as today`);
    const doc = await upload(await company(), clock!.today);
    // the event the relay publishes is what the test waits for (subscribed before the replica starts)
    const nc = await connectNats(infra.nats.url, 'document-expiry-test', createLogger('document-expiry-test', 'silent'), infra.natsAuth);
    const events = nc.subscribe('crm.contacts.document.expiring', { timeout: 20_000 });
    await nc.flush();
    const replica = await createContactsService(configSchema.parse({ ...serviceEnv(infra), DOCUMENT_EXPIRY_CHECK_INTERVAL_MS: '3600000' }));
    try {
      let announced: documentsEventsV1.DocumentExpiring | undefined;
      for await (const m of events) {
        const event = documentsEventsV1.DocumentExpiring.decode(m.data);
        if (event.document?.id !== doc) continue;
        announced = event;
        break;
      }
      expect({ threshold: announced?.thresholdDays, daysUntilExpiry: announced?.daysUntilExpiry }).toEqual({ threshold: 0, daysUntilExpiry: 0 });
      expect((await notices()).filter((n) => n.documentId === doc).map((n) => n.thresholdDays)).toEqual([0]);
    } finally {
      await replica.close();
      await nc.close();
    }
  });
});
