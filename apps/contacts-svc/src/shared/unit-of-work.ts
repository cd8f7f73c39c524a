import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { type DomainError, recordEvents, requestEntityManager, type EntityManager, type Orm, type PendingEvent } from '@crm/platform';

/** CloudEvents `ce-source` of everything contacts-svc emits. */
export const EVENT_SOURCE = '/crm/contacts-svc';

/** What a write returns: its result and the events describing it, built after flush (final version). */
export interface WriteOutcome<T> {
  result: T;
  events: (() => PendingEvent)[];
}

/**
 * Runs `work` in one transaction on a tenant-scoped entity manager, flushes, then stores its
 * events in the outbox in the same transaction: the change and its events commit together or not
 * at all. A unique-index violation becomes `conflict` (`duplicate()` says which).
 */
export async function writeWithEvents<T>(orm: Orm, work: (em: EntityManager) => Promise<WriteOutcome<T>>, duplicate: () => DomainError): Promise<T> {
  try {
    return await requestEntityManager(orm).transactional(async (em) => {
      const { result, events } = await work(em);
      await em.flush();
      recordEvents(
        em,
        EVENT_SOURCE,
        events.map((build) => build()),
      );
      return result;
    });
  } catch (error) {
    if (error instanceof UniqueConstraintViolationException) throw duplicate();
    throw error;
  }
}
