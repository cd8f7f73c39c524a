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
import { CompanyEntity, companyService } from './company/company.service.ts';
import { ContactEntity, contactService } from './contact/contact.service.ts';
import { CustomFieldEntity, customFieldService } from './custom-field/custom-field.service.ts';
import { migrations } from './migrations/index.ts';
import { TagRuleEntity, tagRuleService } from './tag/tag-rule.service.ts';
import { TagEntity, tagService } from './tag/tag.service.ts';

/** Environment of contacts-svc. */
export const configSchema = z.object({ ...serviceEnv, GRPC_PORT: port(7051), OPS_PORT: port(9401) });
export type ContactsConfig = z.infer<typeof configSchema>;

/**
 * Schema `contacts`: the entities the service boots with and the committed migrations; the schema
 * test holds the two to agreement.
 */
export const contactsSchema = {
  schema: 'contacts',
  entities: [...recordEntities(CompanyEntity, ContactEntity, TagEntity, TagRuleEntity, CustomFieldEntity), OutboxMessage, InboxEntry, IdempotentWrite],
  migrations,
};

/** Composition root: boots contacts-svc (schema `contacts`) and returns its handle. */
export function createContactsService(config: ContactsConfig = loadConfig(configSchema)): Promise<ServiceHandle> {
  return startService(
    {
      name: 'contacts-svc',
      ...contactsSchema,
      grpc: ({ orm }) => [
        bindRecordService(companyService(orm)),
        bindRecordService(contactService(orm)),
        bindRecordService(tagService(orm)),
        bindRecordService(tagRuleService(orm)),
        bindRecordService(customFieldService(orm)),
      ],
    },
    config,
  );
}
