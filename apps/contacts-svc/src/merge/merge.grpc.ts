import { duplicateV1 } from '@crm/contracts';
import { bindHandlers, type Orm, type ServiceBinding } from '@crm/platform';
import { expectedVersionOf, typedHandler } from '../customer/customer.grpc.ts';
import { objectName } from '../duplicate/duplicate.grpc.ts';
import { MergeService, type MergeView } from './merge.service.ts';

/** `crm.contacts.v1.MergeService`: merges, their undo and where merged records went — proto ⇄ domain only. */
export function bindMergeService(orm: Orm): ServiceBinding {
  const merges = new MergeService(orm);
  return bindHandlers(duplicateV1.MergeServiceService, {
    mergeCompanies: typedHandler<duplicateV1.MergeCompaniesRequest>(async (req) => {
      const { merge, survivor } = await merges.merge('company', req, expectedVersionOf(req.expectedVersion));
      return { merge: mergeMessage(merge), company: merges.service('company').toMessage(survivor) };
    }),
    mergeContacts: typedHandler<duplicateV1.MergeContactsRequest>(async (req) => {
      const { merge, survivor } = await merges.merge('contact', req, expectedVersionOf(req.expectedVersion));
      return { merge: mergeMessage(merge), contact: merges.service('contact').toMessage(survivor) };
    }),
    undoMerge: typedHandler<duplicateV1.UndoMergeRequest>(async (req) => ({ merge: mergeMessage(await merges.undo(req.mergeId)) })),
    getMerge: typedHandler<duplicateV1.GetMergeRequest>(async (req) => ({ merge: mergeMessage(await merges.get(req.id)) })),
    getMergedRecord: typedHandler<duplicateV1.GetMergedRecordRequest>(async (req) => merges.mergedRecord(objectName(req.object), req.id)),
  });
}

function mergeMessage(m: MergeView): duplicateV1.Merge {
  return {
    id: m.id,
    object: m.object === 'company' ? duplicateV1.CustomerObject.CUSTOMER_OBJECT_COMPANY : duplicateV1.CustomerObject.CUSTOMER_OBJECT_CONTACT,
    survivorId: m.survivorId,
    mergedIds: m.mergedIds,
    fieldChoices: m.fieldChoices,
    createTime: m.createdAt,
    createdBy: m.createdBy,
    undoDeadline: m.undoDeadline,
    undoTime: m.undoneAt ?? undefined,
    undoneBy: m.undoneBy ?? '',
    conflicts: m.conflicts,
    movedIds: m.movedIds,
  };
}
