import type { SegmentValues } from '@crm/contracts';
import { DomainError, type FieldViolation } from '@crm/platform';

/** The segment fields that never change after create: members are of one object and decided one way. */
export const IMMUTABLE_SEGMENT_FIELDS = ['object', 'kind'] as const;

/**
 * A segment's own rules, after the kit normalised its fields (`changed`: the fields this write
 * changes; `isCreate` false for updates): `object` and `kind` are set and, on update, unchanged
 * ("cannot be changed after create"); a dynamic segment has criteria, a static one none. The
 * criteria themselves are checked by segment.criteria.ts. Throws INVALID_ARGUMENT
 * `VALIDATION_FAILED` (400) listing every violation by field.
 */
export function assertSegmentFits(values: SegmentValues, changed: ReadonlySet<string>, isCreate: boolean): void {
  const violations: FieldViolation[] = [];
  const refuse = (field: string, message: string) => violations.push({ field, message });
  if (!isCreate) for (const field of IMMUTABLE_SEGMENT_FIELDS) if (changed.has(field)) refuse(field, 'cannot be changed after create');
  if (values.object === null) refuse('object', 'is required: company or contact');
  if (values.kind === null) refuse('kind', 'is required: dynamic or static');
  if (values.kind === 'dynamic' && values.criteria === null) refuse('criteria', 'is required for a dynamic segment');
  if (values.kind === 'static' && values.criteria !== null) refuse('criteria', 'only dynamic segments have criteria');
  if (violations.length) throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'invalid segment', violations);
}
