import { DomainError } from '@crm/platform';

/**
 * Company hierarchy rule: a company cannot be its own ancestor. `ancestorsOfParent` lists the
 * proposed parent and its ancestors (nearest first). Throws COMPANY_HIERARCHY_CYCLE (422).
 */
export function assertNoHierarchyCycle(companyId: string, ancestorsOfParent: readonly string[]): void {
  if (ancestorsOfParent.includes(companyId)) {
    throw new DomainError('rule_violation', 'COMPANY_HIERARCHY_CYCLE', 'a company cannot be its own parent or ancestor', [
      { field: 'parentCompanyId', message: 'would make the company its own ancestor' },
    ]);
  }
}
