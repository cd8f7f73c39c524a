import { fromProto, segmentRecord, segmentV1, type SegmentObjectName } from '@crm/contracts';
import { bindRecordService, type Orm, type PlainHandler, type ServiceBinding } from '@crm/platform';
import { SegmentService, type MemberPage } from './segment.service.ts';

/**
 * `crm.contacts.v1.SegmentService`: the kit's five record calls plus members, membership and
 * preview, proto ⇄ domain only.
 */
export function bindSegmentService(orm: Orm): ServiceBinding {
  const segments = new SegmentService(orm);
  return bindRecordService(segments, {
    getSegmentMembers: handler<segmentV1.GetSegmentMembersRequest>(async (req) => {
      const page = await segments.members(req.segmentId, { pageSize: req.pageSize || undefined, cursor: req.pageToken || undefined });
      const response: segmentV1.GetSegmentMembersResponse = { ...membersMessage(page), nextPageToken: page.nextCursor ?? '' };
      return response;
    }),
    addSegmentMember: handler<segmentV1.AddSegmentMemberRequest>(async (req) => {
      const response: segmentV1.AddSegmentMemberResponse = { added: await segments.addMember(req.segmentId, req.recordId) };
      return response;
    }),
    removeSegmentMember: handler<segmentV1.RemoveSegmentMemberRequest>(async (req) => {
      const response: segmentV1.RemoveSegmentMemberResponse = { removed: await segments.removeMember(req.segmentId, req.recordId) };
      return response;
    }),
    previewSegment: handler<segmentV1.PreviewSegmentRequest>(async (req) => {
      const object = fromProto(segmentRecord.fields.object, req.object) as SegmentObjectName | null;
      const page = await segments.preview(object, req.criteria ?? null, req.pageSize || undefined);
      const response: segmentV1.PreviewSegmentResponse = { count: String(page.count), ...membersMessage(page), nextPageToken: page.nextCursor ?? '' };
      return response;
    }),
  });
}

/** A decoded request read as its ts-proto type. */
function handler<Req>(handle: (req: Req) => Promise<object>): PlainHandler {
  return (req) => handle(req as Req);
}

function membersMessage(page: MemberPage): Pick<segmentV1.GetSegmentMembersResponse, 'object' | 'companies' | 'contacts'> {
  const object = segmentV1.SegmentObject[page.object === 'company' ? 'SEGMENT_OBJECT_COMPANY' : 'SEGMENT_OBJECT_CONTACT'];
  return {
    object,
    companies: page.object === 'company' ? (page.records as never[]) : [],
    contacts: page.object === 'contact' ? (page.records as never[]) : [],
  };
}
