import { DomainError, hasAnyRole, type FieldViolation, type RequestContext } from '@crm/platform';
import { Decimal } from 'decimal.js';

/** Money as stored: decimal string amount + ISO 4217 code. */
export interface Money {
  amount: string;
  currency: string;
}

const AMOUNT = /^-?\d{1,15}(\.\d{1,4})?$/;
const CURRENCY = /^[A-Z]{3}$/;

/**
 * Validates a money value (architecture "Data rules": decimal string, ISO 4217 code) and returns
 * it normalised (at least 2 fraction digits, at most 4; `numeric(19,4)` in Postgres). Pushes a
 * violation for `field` and returns undefined when invalid.
 */
export function normalizeMoney(value: Money, field: string, violations: FieldViolation[]): Money | undefined {
  if (!AMOUNT.test(value.amount)) {
    violations.push({ field: `${field}.amount`, message: 'must be a decimal string with at most 15 integer and 4 fraction digits' });
    return undefined;
  }
  if (!CURRENCY.test(value.currency)) {
    violations.push({ field: `${field}.currency`, message: 'must be an ISO 4217 code such as USD' });
    return undefined;
  }
  return { amount: formatAmount(value.amount), currency: value.currency };
}

/** Formats a stored decimal with at least 2 and at most 4 fraction digits ("1100040000.0000" → "1100040000.00"). */
export function formatAmount(amount: string): string {
  const d = new Decimal(amount);
  return d.toFixed(Math.max(2, Math.min(4, d.decimalPlaces())));
}

/**
 * Write access to a record (architecture "Tenancy and identity"): crm-admin and crm-manager may
 * write every record of the organization; crm-rep only records they own (or create for
 * themselves); crm-viewer nothing. Throws PERMISSION_DENIED.
 */
export function assertCanWrite(ctx: RequestContext, ownerId: string | undefined): void {
  if (hasAnyRole(ctx, 'crm-admin', 'crm-manager')) return;
  if (hasAnyRole(ctx, 'crm-rep') && ownerId === ctx.userId) return;
  throw new DomainError('permission_denied', 'NOT_ALLOWED', hasAnyRole(ctx, 'crm-rep') ? 'reps may only change records they own' : 'read-only role');
}

/** Throws INVALID_ARGUMENT with every violation when there are any. */
export function throwIfInvalid(violations: FieldViolation[], what: string): void {
  if (violations.length > 0) throw new DomainError('invalid_argument', 'VALIDATION_FAILED', `invalid ${what}`, violations);
}

/** Trims; empty → undefined. Pushes a violation when longer than `max`. */
export function optionalText(value: string | undefined, field: string, max: number, violations: FieldViolation[]): string | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (v.length > max) violations.push({ field, message: `must be at most ${max} characters` });
  return v;
}

/** `%text%` for a case-insensitive substring match, with LIKE's `\\`, `%` and `_` escaped. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
