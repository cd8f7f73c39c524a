import { contactV1 } from '@crm/contracts';
import { bindService, type ServiceBinding } from '@crm/platform';
import { optionalVersion } from '../company/company.grpc.ts';
import { contactMask, fromContactMessage, toContactMessage } from './contact.mapper.ts';
import type { ContactService } from './contact.service.ts';

/** gRPC edge of contacts: proto ⇄ domain only. */
export function contactGrpc(service: ContactService): ServiceBinding {
  return bindService('crm.contacts.v1.ContactService', contactV1.ContactServiceService, {
    createContact: async (req) => ({ contact: toContactMessage(await service.create(fromContactMessage(req.contact))) }),
    getContact: async (req) => ({ contact: toContactMessage(await service.get(req.id)) }),
    listContacts: async (req) => {
      const page = await service.list({
        pageSize: req.pageSize,
        cursor: req.pageToken || undefined,
        query: req.query || undefined,
        companyId: req.companyId || undefined,
      });
      return { contacts: page.items.map(toContactMessage), nextPageToken: page.nextCursor ?? '' };
    },
    updateContact: async (req) => {
      const contact = await service.update(
        req.contact?.id ?? '',
        fromContactMessage(req.contact),
        contactMask(req.updateMask),
        optionalVersion(req.expectedVersion),
      );
      return { contact: toContactMessage(contact) };
    },
    deleteContact: async (req) => {
      await service.delete(req.id, optionalVersion(req.expectedVersion));
      return {};
    },
  });
}
