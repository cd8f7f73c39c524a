import { v7 } from 'uuid';

/** A new UUIDv7 (RFC 9562): time-ordered, so ids sort by creation and index locality is good. */
export function newId(): string {
  return v7();
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a canonical UUID string (any version). */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}
