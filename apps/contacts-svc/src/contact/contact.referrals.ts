import type { contactRecord } from '@crm/contracts';
import type { RecordRow, RecordService } from '@crm/platform';

type ContactFields = typeof contactRecord.fields;

/**
 * One page of the live contacts whose `referredById` is contact `id`, in creation order — the
 * contact list filtered by `referredById`, so paging and cursors are those of every list (page
 * size 1..200, default 50). The referring contact must be a live contact of the caller's
 * organization: NOT_FOUND otherwise (another tenant's id included), never an empty page that
 * would tell a foreign id from a missing one. Errors also: INVALID_PAGE_SIZE, INVALID_CURSOR.
 */
export async function contactReferrals(
  contacts: RecordService<ContactFields>,
  id: string,
  page: { pageSize?: number | undefined; cursor?: string | undefined },
): Promise<{ items: RecordRow<ContactFields>[]; nextCursor: string | undefined }> {
  await contacts.get(id);
  return contacts.list({ pageSize: page.pageSize, cursor: page.cursor, filters: { referredById: id } });
}
