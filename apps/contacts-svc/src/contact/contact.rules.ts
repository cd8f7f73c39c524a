import { DomainError } from '@crm/platform';

/** A contact needs a first or a last name (either may be empty, not both). Throws INVALID_ARGUMENT on `lastName`. */
export function assertHasAName(firstName: string, lastName: string): void {
  if (!firstName && !lastName) {
    throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'invalid contact', [{ field: 'lastName', message: 'a first or last name is required' }]);
  }
}
