import { documentV1 } from '@crm/contracts';
import { bindHandlers, DomainError, type ClientStreamHandler, type PlainHandler, type ServerStreamHandler, type ServiceBinding } from '@crm/platform';
import { fromProtoType, fromProtoVisibility, toDocumentMessage, type DocumentChanges, type DocumentParent, type DocumentService } from './document.service.ts';

/** Largest chunk message of a download, bytes (the upload's limit too). */
export const DOWNLOAD_CHUNK_BYTES = 64 * 1024;

/** Update-mask paths UpdateDocument accepts, and the metadata field each writes. */
const MASK: Record<string, keyof DocumentChanges> = {
  name: 'name',
  document_type: 'documentType',
  expires_on: 'expiresOn',
  visibility: 'visibility',
};

/** `crm.contacts.v1.DocumentService`: proto ⇄ domain only (rules in document.service.ts). */
export function bindDocumentService(documents: DocumentService): ServiceBinding {
  const uploadDocument: ClientStreamHandler = async (requests) => {
    const messages = (requests as AsyncIterable<documentV1.UploadDocumentRequest>)[Symbol.asyncIterator]();
    const first = await messages.next();
    const header = first.done ? undefined : first.value.header;
    if (!header) throw invalid('header', 'the first message must be the header');
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let next = await messages.next(); !next.done; next = await messages.next()) {
        if (next.value.header) throw invalid('header', 'only the first message may be the header');
        if (next.value.chunk?.length) yield next.value.chunk;
      }
    }
    const response: documentV1.UploadDocumentResponse = { document: toDocumentMessage(await documents.upload(header, chunks())) };
    return response;
  };

  // the content's first chunk is read before the header goes out: a missing blob ends the call
  // with NOT_FOUND before anything was sent, so the gateway can still answer 404
  const downloadDocument: ServerStreamHandler = async function* (request) {
    const { document, content } = await documents.download((request as unknown as documentV1.DownloadDocumentRequest).id);
    try {
      const header: documentV1.DownloadDocumentResponse = { header: toDocumentMessage(document) };
      yield header;
      for (let next = await content.next(); !next.done; next = await content.next()) {
        const chunk = next.value;
        for (let at = 0; at < chunk.length; at += DOWNLOAD_CHUNK_BYTES) {
          const part: documentV1.DownloadDocumentResponse = { chunk: chunk.subarray(at, at + DOWNLOAD_CHUNK_BYTES) };
          yield part;
        }
      }
    } finally {
      // also when the caller cancels before the first chunk: closes the blob's stream
      await content.return?.();
    }
  };

  return bindHandlers(documentV1.DocumentServiceService, {
    uploadDocument,
    downloadDocument,
    getDocument: handler<documentV1.GetDocumentRequest>(async (req) => {
      const response: documentV1.GetDocumentResponse = { document: toDocumentMessage(await documents.get(req.id)) };
      return response;
    }),
    listDocuments: handler<documentV1.ListDocumentsRequest>(async (req) => {
      if (req.companyId && req.contactId) throw invalid('contactId', 'give at most one of companyId and contactId');
      const parent: DocumentParent | undefined = req.companyId
        ? { kind: 'company', id: req.companyId }
        : req.contactId
          ? { kind: 'contact', id: req.contactId }
          : undefined;
      const page = await documents.list({
        pageSize: req.pageSize || undefined,
        cursor: req.pageToken || undefined,
        parent,
        expiringWithinDays: req.expiringWithinDays,
      });
      const response: documentV1.ListDocumentsResponse = { documents: page.items.map(toDocumentMessage), nextPageToken: page.nextCursor ?? '' };
      return response;
    }),
    updateDocument: handler<documentV1.UpdateDocumentRequest>(async (req) => {
      const doc = req.document;
      if (!doc) throw invalid('document', 'is required');
      const changes: Record<string, unknown> = {};
      for (const path of req.updateMask ?? []) {
        const key = MASK[path];
        if (!key) throw invalid(path, `cannot be changed (update_mask paths: ${Object.keys(MASK).join(', ')})`);
        changes[key] =
          key === 'documentType'
            ? fromProtoType(doc.documentType)
            : key === 'visibility'
              ? fromProtoVisibility(doc.visibility)
              : key === 'expiresOn'
                ? doc.expiresOn || null
                : doc.name;
      }
      const updated = await documents.update(doc.id, changes as DocumentChanges, version(req.expectedVersion));
      const response: documentV1.UpdateDocumentResponse = { document: toDocumentMessage(updated) };
      return response;
    }),
    deleteDocument: handler<documentV1.DeleteDocumentRequest>(async (req) => {
      await documents.delete(req.id, version(req.expectedVersion));
      const response: documentV1.DeleteDocumentResponse = {};
      return response;
    }),
  });
}

/** A decoded request read as its ts-proto type. */
function handler<Req>(handle: (req: Req) => Promise<object>): PlainHandler {
  return (req) => handle(req as Req);
}

function invalid(field: string, message: string): DomainError {
  return new DomainError('invalid_argument', 'VALIDATION_FAILED', `${field} ${message}`, [{ field, message }]);
}

/** A proto int64 expected version (string) as a number; undefined when absent. */
function version(expected: string | undefined): number | undefined {
  return expected === undefined ? undefined : Number(expected);
}
