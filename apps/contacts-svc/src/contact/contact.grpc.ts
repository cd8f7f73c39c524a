import type { contactV1 } from '@crm/contracts';
import { bindRecordService, type Orm, type ServiceBinding } from '@crm/platform';
import { expectedVersionOf, typedHandler } from '../customer/customer.grpc.ts';
import { assignTag, unassignTag } from '../customer/customer.tags.ts';
import { contactReferrals } from './contact.referrals.ts';
import { contactService } from './contact.service.ts';

/**
 * `crm.contacts.v1.ContactService`: the kit's five record calls plus referrals and tag
 * assignment, proto ⇄ domain only.
 */
export function bindContactService(orm: Orm): ServiceBinding {
  const contacts = contactService(orm);
  const reply = (row: Parameters<typeof contacts.toMessage>[0]) => ({ contact: contacts.toMessage(row) });
  return bindRecordService(contacts, {
    listContactReferrals: typedHandler<contactV1.ListContactReferralsRequest>(async (req) => {
      const page = await contactReferrals(contacts, req.id, { pageSize: req.pageSize || undefined, cursor: req.pageToken || undefined });
      return { contacts: page.items.map((row) => contacts.toMessage(row)), nextPageToken: page.nextCursor ?? '' };
    }),
    assignContactTag: typedHandler<contactV1.AssignContactTagRequest>(async (req) =>
      reply(await assignTag(contacts, req.id, req.tagId, expectedVersionOf(req.expectedVersion))),
    ),
    unassignContactTag: typedHandler<contactV1.UnassignContactTagRequest>(async (req) =>
      reply(await unassignTag(contacts, req.id, req.tagId, expectedVersionOf(req.expectedVersion))),
    ),
  });
}
