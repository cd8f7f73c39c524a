import { mergesEventsV1 } from '@crm/contracts';
import { DomainError, hasAnyRole, recordEvents, requestEntityManager, requireContext, type EntityManager, type Orm } from '@crm/platform';
import { DEFAULT_DUPLICATE_THRESHOLD, validThreshold } from './duplicate.rules.ts';

/** The organization's duplicate settings as served. */
export interface DuplicateSettings {
  /** 1..100. */
  threshold: number;
  /** When an admin last set them; null while the default applies. */
  updatedAt: Date | null;
  updatedBy: string | null;
}

/** The organization's likely-duplicate threshold: its setting, else {@link DEFAULT_DUPLICATE_THRESHOLD} (80). */
export async function duplicateThreshold(em: EntityManager, organizationId: string): Promise<number> {
  return (await readSettings(em, organizationId)).threshold;
}

/** The caller's organization's settings (the default until set). */
export async function getDuplicateSettings(orm: Orm): Promise<DuplicateSettings> {
  return readSettings(requestEntityManager(orm), requireContext().organizationId);
}

/**
 * Sets the caller's organization's threshold (crm-admin only: PERMISSION_DENIED `NOT_ALLOWED`
 * otherwise; a threshold that is no whole number 1..100: INVALID_ARGUMENT naming `threshold`).
 * Emits `crm.contacts.duplicate_settings.updated` when it changes.
 */
export async function updateDuplicateSettings(orm: Orm, threshold: unknown): Promise<DuplicateSettings> {
  const ctx = requireContext();
  if (!hasAnyRole(ctx, 'crm-admin')) throw new DomainError('permission_denied', 'NOT_ALLOWED', 'changing duplicate settings requires the role crm-admin');
  const value = validThreshold(threshold);
  if (value === undefined) {
    throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'invalid duplicate settings', [{ field: 'threshold', message: 'a whole number 1..100' }]);
  }
  return requestEntityManager(orm).transactional(async (em) => {
    // the row lock orders concurrent admins, so each event's previous threshold is the one it
    // replaced; the first time there is no row to lock, so one holding the default is inserted
    // first (`on conflict do nothing`: a concurrent first admin waits on it, then locks it)
    await em.execute(
      `insert into contacts.duplicate_settings (organization_id, threshold, updated_at, updated_by, version) values (?, ?, now(), '', 0)
       on conflict (organization_id) do nothing`,
      [ctx.organizationId, DEFAULT_DUPLICATE_THRESHOLD],
    );
    const [before] = await em.execute<{ threshold: number }[]>('select threshold from contacts.duplicate_settings where organization_id = ? for update', [
      ctx.organizationId,
    ]);
    const previous = before?.threshold ?? DEFAULT_DUPLICATE_THRESHOLD;
    await em.execute(
      `insert into contacts.duplicate_settings (organization_id, threshold, updated_at, updated_by, version) values (?, ?, now(), ?, 1)
       on conflict (organization_id) do update set threshold = excluded.threshold, updated_at = excluded.updated_at, updated_by = excluded.updated_by,
         version = duplicate_settings.version + 1`,
      [ctx.organizationId, value, ctx.userId],
    );
    if (previous !== value) {
      recordEvents(em, '/crm/contacts-svc', [
        {
          subject: 'crm.contacts.duplicate_settings.updated',
          dataSchema: 'crm.events.v1.DuplicateSettingsUpdated',
          aggregateId: ctx.organizationId,
          data: mergesEventsV1.DuplicateSettingsUpdated.encode({ threshold: value, previousThreshold: previous }).finish(),
        },
      ]);
    }
    return readSettings(em, ctx.organizationId);
  });
}

async function readSettings(em: EntityManager, organizationId: string): Promise<DuplicateSettings> {
  const [row] = await em.execute<{ threshold: number; updated_at: Date; updated_by: string }[]>(
    'select threshold, updated_at, updated_by from contacts.duplicate_settings where organization_id = ?',
    [organizationId],
  );
  return row
    ? { threshold: row.threshold, updatedAt: new Date(row.updated_at), updatedBy: row.updated_by }
    : { threshold: DEFAULT_DUPLICATE_THRESHOLD, updatedAt: null, updatedBy: null };
}
