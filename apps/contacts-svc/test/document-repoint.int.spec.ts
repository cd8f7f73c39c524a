import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { contactsV1, contactV1, documentsEventsV1, documentV1 } from '@crm/contracts';
import { callClientStream, callUnary, insecure, newId, type EntityManager, type ServiceHandle } from '@crm/platform';
import { asAdminOf, organizationId, serviceEnv, startTestInfra, type TestInfra } from '@crm/testing';
import { configSchema, createContactsService } from '../src/app.ts';
import { repointDocuments, restoreDocumentParents, type DocumentMove } from '../src/document/document.service.ts';

/**
 * What a merge does to documents (issue 8), called directly as the merge's transaction calls
 * them: `repointDocuments` moves the merged records' documents to the survivor (version + 1, an
 * `updated` event naming the parent field), `restoreDocumentParents` moves them back on undo —
 * except those deleted or moved on since. Only the caller's organization is ever touched.
 */
let infra: TestInfra;
let contacts: ServiceHandle;
let documents: documentV1.DocumentServiceClient;
let companies: contactsV1.CompanyServiceClient;
let people: contactV1.ContactServiceClient;
const ACME = organizationId('acme');

beforeAll(async () => {
  infra = await startTestInfra();
  contacts = await createContactsService(configSchema.parse({ ...serviceEnv(infra), DOCUMENT_EXPIRY_CHECK_INTERVAL_MS: '0', BLOB_SWEEP_INTERVAL_MS: '0' }));
  const address = `127.0.0.1:${contacts.grpcPort}`;
  documents = new documentV1.DocumentServiceClient(address, insecure());
  companies = new contactsV1.CompanyServiceClient(address, insecure());
  people = new contactV1.ContactServiceClient(address, insecure());
});

afterAll(async () => {
  documents?.close();
  companies?.close();
  people?.close();
  await contacts?.close();
  await infra?.close();
});

async function company(org: 'acme' | 'globex' = 'acme'): Promise<string> {
  const res = await asAdminOf(org, () =>
    callUnary(companies, companies.createCompany, { company: contactsV1.Company.fromPartial({ name: `Merge Co ${newId()}` }) }),
  );
  return res.company!.id;
}

async function contact(): Promise<string> {
  const res = await asAdminOf('acme', () =>
    callUnary(people, people.createContact, { contact: contactV1.Contact.fromPartial({ firstName: 'Mia', lastName: `Merge ${newId()}` }) }),
  );
  return res.contact!.id;
}

/** Uploads a small document to a company or contact of `org`. */
async function upload(
  parent: { companyId?: string; contactId?: string },
  org: 'acme' | 'globex' = 'acme',
  visibility: documentV1.DocumentVisibility = documentV1.DocumentVisibility.DOCUMENT_VISIBILITY_PUBLIC,
): Promise<string> {
  async function* requests(): AsyncGenerator<documentV1.UploadDocumentRequest> {
    yield {
      header: {
        companyId: parent.companyId ?? '',
        contactId: parent.contactId ?? '',
        name: 'Contract',
        documentType: 1,
        expiresOn: '',
        visibility,
        fileName: 'c.pdf',
      },
    };
    yield { chunk: Buffer.from('%PDF-1.7\n%%EOF\n') };
  }
  const res = await asAdminOf(org, () => callClientStream(documents, documents.uploadDocument, requests()));
  return res.document!.id;
}

/** Parent and version of document `id` as stored. */
async function stored(id: string): Promise<{ companyId: string | null; contactId: string | null; version: number } | undefined> {
  const [row] = await contacts.orm.em
    .fork()
    .execute<{ company_id: string | null; contact_id: string | null; version: number }[]>(
      'select company_id, contact_id, version from contacts.document where id = ?',
      [id],
    );
  return row ? { companyId: row.company_id, contactId: row.contact_id, version: row.version } : undefined;
}

/** The `updated` events of document `id` in the outbox: changed fields and changes. */
async function updates(id: string): Promise<{ changedFields: string[]; changes: unknown[] }[]> {
  const rows = await contacts.orm.em
    .fork()
    .execute<{ payload: Buffer }[]>(
      `select payload from contacts.outbox where aggregate_id = ? and subject = 'crm.contacts.document.updated' order by occurred_at, id`,
      [id],
    );
  return rows.map((r) => {
    const e = documentsEventsV1.DocumentUpdated.decode(r.payload);
    return { changedFields: e.changedFields, changes: e.changes };
  });
}

/** Runs `fn` in a transaction of acme's, as the merge (or its undo) does. */
function inMergeTransaction<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
  return asAdminOf('acme', () => contacts.orm.em.fork().transactional(fn));
}

describe('repointDocuments / restoreDocumentParents', () => {
  it('moves the merged companies’ documents to the survivor and back, skipping what was deleted or moved on since', async () => {
    const [survivor, merged1, merged2, later] = [await company(), await company(), await company(), await company()];
    const kept = await upload({ companyId: survivor });
    const a = await upload({ companyId: merged1 });
    const b = await upload({ companyId: merged1 });
    const secret = await upload({ companyId: merged2 }, 'acme', documentV1.DocumentVisibility.DOCUMENT_VISIBILITY_PRIVATE);
    const foreignCompany = await company('globex');
    const foreign = await upload({ companyId: foreignCompany }, 'globex');

    const moves = await inMergeTransaction((em) => repointDocuments(em, ACME, 'company', [merged1, merged2, foreignCompany, 'not-an-id'], survivor));
    expect([...moves].sort((x, y) => x.documentId.localeCompare(y.documentId))).toEqual(
      [
        { documentId: a, object: 'company', fromId: merged1, toId: survivor },
        { documentId: b, object: 'company', fromId: merged1, toId: survivor },
        { documentId: secret, object: 'company', fromId: merged2, toId: survivor },
      ].sort((x, y) => x.documentId.localeCompare(y.documentId)),
    );
    for (const id of [a, b, secret]) expect(await stored(id)).toEqual({ companyId: survivor, contactId: null, version: 2 });
    expect(await stored(kept)).toEqual({ companyId: survivor, contactId: null, version: 1 });
    // another organization's document is never moved, whatever ids the caller passes
    expect(await stored(foreign)).toEqual({ companyId: foreignCompany, contactId: null, version: 1 });
    expect(await updates(a)).toEqual([{ changedFields: ['company_id'], changes: [{ field: 'company_id', oldValue: merged1, newValue: survivor }] }]);
    const listed = await asAdminOf('acme', () =>
      callUnary(documents, documents.listDocuments, { pageSize: 10, pageToken: '', companyId: survivor, contactId: '' }),
    );
    expect(listed.documents.map((d) => d.id).sort()).toEqual([kept, a, b, secret].sort());
    expect(listed.documents.find((d) => d.id === secret)?.visibility).toBe(documentV1.DocumentVisibility.DOCUMENT_VISIBILITY_PRIVATE);

    // since the merge: one document deleted, another moved on (as by a later merge of the survivor)
    await asAdminOf('acme', () => callUnary(documents, documents.deleteDocument, { id: b }));
    await contacts.orm.em.fork().execute('update contacts.document set company_id = ? where id = ?', [later, secret]);

    // a restore in another organization's name touches nothing
    const elsewhere = await asAdminOf('globex', () =>
      contacts.orm.em.fork().transactional((em) => restoreDocumentParents(em, organizationId('globex'), moves)),
    );
    expect({ restored: elsewhere.restored, skipped: [...elsewhere.skipped].sort() }).toEqual({ restored: [], skipped: [a, b, secret].sort() });
    expect((await stored(a))?.companyId).toBe(survivor);

    const result = await inMergeTransaction((em) => restoreDocumentParents(em, ACME, moves));
    expect({ restored: result.restored, skipped: [...result.skipped].sort() }).toEqual({ restored: [a], skipped: [b, secret].sort() });
    expect(await stored(a)).toEqual({ companyId: merged1, contactId: null, version: 3 });
    expect(await stored(b)).toBeUndefined();
    expect((await stored(secret))?.companyId).toBe(later);
    expect(await stored(kept)).toEqual({ companyId: survivor, contactId: null, version: 1 });
  });

  it('restores exactly the moved documents of contacts, each with a new version and an updated event', async () => {
    const [survivor, merged] = [await contact(), await contact()];
    const doc = await upload({ contactId: merged });
    const other = await upload({ contactId: survivor });
    const moves: DocumentMove[] = await inMergeTransaction((em) => repointDocuments(em, ACME, 'contact', [merged], survivor));
    expect(moves).toEqual([{ documentId: doc, object: 'contact', fromId: merged, toId: survivor }]);
    // the merge's snapshot keeps the moves as JSON
    const kept = JSON.parse(JSON.stringify(moves)) as DocumentMove[];
    expect(await inMergeTransaction((em) => restoreDocumentParents(em, ACME, kept))).toEqual({ restored: [doc], skipped: [] });
    expect(await stored(doc)).toEqual({ companyId: null, contactId: merged, version: 3 });
    expect(await stored(other)).toEqual({ companyId: null, contactId: survivor, version: 1 });
    expect((await updates(doc)).map((u) => u.changes)).toEqual([
      [{ field: 'contact_id', oldValue: merged, newValue: survivor }],
      [{ field: 'contact_id', oldValue: survivor, newValue: merged }],
    ]);
    // nothing to move (no merged record, or only the survivor itself): no move
    expect(await inMergeTransaction((em) => repointDocuments(em, ACME, 'contact', [], survivor))).toEqual([]);
    expect(await inMergeTransaction((em) => repointDocuments(em, ACME, 'contact', [survivor], survivor))).toEqual([]);
  });
});
