import { loadConfig, OutboxMessage, port, serviceEnv, startService, type ServiceHandle } from '@crm/platform';
import { z } from 'zod';
import { CompanyEntity } from './company/company.entity.ts';
import { companyGrpc } from './company/company.grpc.ts';
import { CompanyService } from './company/company.service.ts';
import { ContactEntity } from './contact/contact.entity.ts';
import { contactGrpc } from './contact/contact.grpc.ts';
import { ContactService } from './contact/contact.service.ts';
import { migrations } from './migrations/index.ts';

/** Environment of contacts-svc. */
export const configSchema = z.object({ ...serviceEnv, GRPC_PORT: port(50051), OPS_PORT: port(9401) });
export type ContactsConfig = z.infer<typeof configSchema>;

/** Composition root: boots contacts-svc (schema `contacts`) and returns its handle. */
export function createContactsService(config: ContactsConfig = loadConfig(configSchema)): Promise<ServiceHandle> {
  return startService(
    {
      name: 'contacts-svc',
      schema: 'contacts',
      entities: [CompanyEntity, ContactEntity, OutboxMessage],
      migrations,
      grpc: ({ orm }) => [companyGrpc(new CompanyService(orm)), contactGrpc(new ContactService(orm))],
    },
    config,
  );
}
