import {
  bindRecordService,
  IdempotentWrite,
  InboxEntry,
  loadConfig,
  OutboxMessage,
  port,
  recordEntities,
  serviceEnv,
  startService,
  type ServiceHandle,
} from '@crm/platform';
import { z } from 'zod';
import { bindCompanyService } from './company/company.grpc.ts';
import { CompanyEntity } from './company/company.service.ts';
import { bindContactService } from './contact/contact.grpc.ts';
import { ContactEntity } from './contact/contact.service.ts';
import { DocumentEntity, DocumentExpiryNoticeEntity } from './document/document.entity.ts';
import { documentEnv, startDocumentExpiryWorker } from './document/document-expiry.worker.ts';
import { bindDocumentService } from './document/document.grpc.ts';
import { DocumentService } from './document/document.service.ts';
import { CustomFieldEntity, customFieldService } from './custom-field/custom-field.service.ts';
import { DuplicatePairEntity, DuplicateScanQueueEntity, DuplicateSettingsEntity } from './duplicate/duplicate.entities.ts';
import { bindDuplicateService } from './duplicate/duplicate.grpc.ts';
import { startDuplicateScanWorker } from './duplicate/duplicate.scan.ts';
import { RecordMergeEntity } from './merge/merge.entity.ts';
import { bindMergeService } from './merge/merge.grpc.ts';
import { migrations } from './migrations/index.ts';
import { bindSegmentService } from './segment/segment.grpc.ts';
import { SegmentEntity, SegmentMemberEntity } from './segment/segment.service.ts';
import { BlobEntity, blobStoreEnv, createBlobStore } from './storage/blob-store.ts';
import { startBlobSweepWorker } from './storage/blob-sweep.worker.ts';
import { BlobChunkEntity } from './storage/postgres-blob-store.ts';
import { TagRuleEntity, tagRuleService } from './tag/tag-rule.service.ts';
import { TagEntity, tagService } from './tag/tag.service.ts';

/** Scans until the duplicate queue is empty (tests: no polling). */
export { drainDuplicateScan } from './duplicate/duplicate.scan.ts';

/** Environment of contacts-svc. */
export const configSchema = z.object({ ...serviceEnv, ...blobStoreEnv, ...documentEnv, GRPC_PORT: port(7051), OPS_PORT: port(9401) });
export type ContactsConfig = z.infer<typeof configSchema>;

/**
 * Schema `contacts`: the entities the service boots with and the committed migrations; the schema
 * test holds the two to agreement.
 */
export const contactsSchema = {
  schema: 'contacts',
  entities: [
    ...recordEntities(CompanyEntity, ContactEntity, TagEntity, TagRuleEntity, CustomFieldEntity, SegmentEntity),
    SegmentMemberEntity,
    DuplicatePairEntity,
    DuplicateScanQueueEntity,
    DuplicateSettingsEntity,
    RecordMergeEntity,
    DocumentEntity,
    DocumentExpiryNoticeEntity,
    BlobEntity,
    BlobChunkEntity,
    OutboxMessage,
    InboxEntry,
    IdempotentWrite,
  ],
  migrations,
};

/** Composition root: boots contacts-svc (schema `contacts`) and returns its handle. */
export function createContactsService(config: ContactsConfig = loadConfig(configSchema)): Promise<ServiceHandle> {
  return startService(
    {
      name: 'contacts-svc',
      ...contactsSchema,
      grpc: ({ orm, logger }) => [
        bindDocumentService(new DocumentService(orm, createBlobStore({ orm, config }), logger)),
        bindCompanyService(orm),
        bindContactService(orm),
        bindRecordService(tagService(orm)),
        bindRecordService(tagRuleService(orm)),
        bindRecordService(customFieldService(orm)),
        bindSegmentService(orm),
        bindDuplicateService(orm),
        bindMergeService(orm),
      ],
      workers: ({ orm, logger, metrics }) => [
        startDocumentExpiryWorker({ orm, logger }, config.DOCUMENT_EXPIRY_CHECK_INTERVAL_MS),
        startBlobSweepWorker({ orm, logger, config }),
        startDuplicateScanWorker({ orm, logger, metrics }),
      ],
    },
    config,
  );
}
