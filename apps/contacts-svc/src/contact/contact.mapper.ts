import type { contactV1 } from '@crm/contracts';
import { DomainError } from '@crm/platform';
import type { Contact } from './contact.entity.ts';
import { CONTACT_FIELD_PROTO_NAMES, CONTACT_FIELDS, type ContactField, type ContactFields } from './contact.rules.ts';

/** Entity → proto message. */
export function toContactMessage(c: Contact): contactV1.Contact {
  return {
    id: c.id,
    firstName: c.firstName,
    lastName: c.lastName,
    email: c.email ?? '',
    phone: c.phone ?? '',
    jobTitle: c.jobTitle ?? '',
    companyId: c.companyId ?? '',
    ownerId: c.ownerId,
    audit: { createTime: c.createdAt, updateTime: c.updatedAt, createdBy: c.createdBy, version: String(c.version) },
  };
}

/** Proto message → domain fields (empty string = absent). */
export function fromContactMessage(m: contactV1.Contact | undefined): ContactFields {
  if (!m) throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'contact is required', [{ field: 'contact', message: 'is required' }]);
  return {
    firstName: m.firstName,
    lastName: m.lastName,
    email: m.email || undefined,
    phone: m.phone || undefined,
    jobTitle: m.jobTitle || undefined,
    companyId: m.companyId || undefined,
    ownerId: m.ownerId || undefined,
  };
}

const PROTO_TO_FIELD = new Map<string, ContactField>(CONTACT_FIELDS.map((f) => [CONTACT_FIELD_PROTO_NAMES[f], f]));

/** Update-mask paths (proto names) → fields; unknown or empty is INVALID_ARGUMENT. */
export function contactMask(paths: readonly string[] | undefined): ContactField[] {
  const out: ContactField[] = [];
  for (const path of paths ?? []) {
    const field = PROTO_TO_FIELD.get(path);
    if (!field) throw new DomainError('invalid_argument', 'INVALID_UPDATE_MASK', `cannot update ${path}`, [{ field: path, message: 'not an updatable field' }]);
    out.push(field);
  }
  if (out.length === 0)
    throw new DomainError('invalid_argument', 'INVALID_UPDATE_MASK', 'update mask is empty', [{ field: 'updateMask', message: 'name at least one field' }]);
  return out;
}
