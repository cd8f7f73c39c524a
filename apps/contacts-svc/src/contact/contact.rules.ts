import type { FieldViolation } from '@crm/platform';
import { optionalText, throwIfInvalid } from '../shared/record.rules.ts';

/** Contact fields a caller may set; `undefined` = not given / cleared. */
export interface ContactFields {
  firstName: string;
  lastName: string;
  email?: string | undefined;
  phone?: string | undefined;
  jobTitle?: string | undefined;
  companyId?: string | undefined;
  ownerId?: string | undefined;
}

export const CONTACT_FIELDS = ['firstName', 'lastName', 'email', 'phone', 'jobTitle', 'companyId', 'ownerId'] as const;
export type ContactField = (typeof CONTACT_FIELDS)[number];

/** Proto field name of each updatable field. */
export const CONTACT_FIELD_PROTO_NAMES: Record<ContactField, string> = {
  firstName: 'first_name',
  lastName: 'last_name',
  email: 'email',
  phone: 'phone',
  jobTitle: 'job_title',
  companyId: 'company_id',
  ownerId: 'owner_id',
};

// Pragmatic address check (WHATWG "valid e-mail address"), not full RFC 5322.
const EMAIL = /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$/;
// E.164-ish: optional +, digits with spaces, dots, dashes, parentheses; 5..20 digits.
const PHONE = /^\+?[0-9 ().-]{5,30}$/;

/**
 * Validates and normalises contact fields: a first or last name is required, email lower-cased
 * and checked (WHATWG e-mail syntax), phone limited to dialable characters. Throws
 * INVALID_ARGUMENT listing every violation.
 */
export function normalizeContactFields(input: ContactFields): ContactFields {
  const v: FieldViolation[] = [];
  const firstName = input.firstName.trim();
  const lastName = input.lastName.trim();
  if (!firstName && !lastName) v.push({ field: 'lastName', message: 'a first or last name is required' });
  if (firstName.length > 100) v.push({ field: 'firstName', message: 'must be at most 100 characters' });
  if (lastName.length > 100) v.push({ field: 'lastName', message: 'must be at most 100 characters' });
  const email = optionalText(input.email, 'email', 254, v)?.toLowerCase();
  if (email && !EMAIL.test(email)) v.push({ field: 'email', message: 'must be an e-mail address' });
  const phone = optionalText(input.phone, 'phone', 30, v);
  if (phone && !PHONE.test(phone)) v.push({ field: 'phone', message: 'must be a phone number such as +1 555 0100' });
  const jobTitle = optionalText(input.jobTitle, 'jobTitle', 200, v);
  throwIfInvalid(v, 'contact');
  return { firstName, lastName, email, phone, jobTitle, companyId: input.companyId || undefined, ownerId: input.ownerId || undefined };
}
