import { companyRecord, toProto, type contactsV1 } from '@crm/contracts';
import { bindRecordService, type Orm, type ServiceBinding } from '@crm/platform';
import { expectedVersionOf, typedHandler } from '../customer/customer.grpc.ts';
import { assignTag, unassignTag } from '../customer/customer.tags.ts';
import { companyHierarchy, type CompanyHierarchyNode, type CompanySummary } from './company.hierarchy.ts';
import { companyService } from './company.service.ts';

/**
 * `crm.contacts.v1.CompanyService`: the kit's five record calls plus the hierarchy and tag
 * assignment, proto ⇄ domain only.
 */
export function bindCompanyService(orm: Orm): ServiceBinding {
  const companies = companyService(orm);
  const reply = (row: Parameters<typeof companies.toMessage>[0]) => ({ company: companies.toMessage(row) });
  return bindRecordService(companies, {
    getCompanyHierarchy: typedHandler<contactsV1.GetCompanyHierarchyRequest>(async (req) => {
      const h = await companyHierarchy(orm, req.id, req.depth);
      const response: contactsV1.GetCompanyHierarchyResponse = {
        ancestors: h.ancestors.map(summaryMessage),
        company: summaryMessage(h.company),
        subsidiaries: h.subsidiaries.map(nodeMessage),
        truncated: h.truncated,
      };
      return response;
    }),
    assignCompanyTag: typedHandler<contactsV1.AssignCompanyTagRequest>(async (req) =>
      reply(await assignTag(companies, req.id, req.tagId, expectedVersionOf(req.expectedVersion))),
    ),
    unassignCompanyTag: typedHandler<contactsV1.UnassignCompanyTagRequest>(async (req) =>
      reply(await unassignTag(companies, req.id, req.tagId, expectedVersionOf(req.expectedVersion))),
    ),
  });
}

function summaryMessage(s: CompanySummary): contactsV1.CompanySummary {
  const f = companyRecord.fields;
  return {
    id: s.id,
    name: s.name,
    domain: s.domain ?? '',
    accountType: toProto(f.accountType, s.accountType) as contactsV1.AccountType,
    status: toProto(f.status, s.status) as contactsV1.CompanyStatus,
    parentCompanyId: s.parentCompanyId ?? '',
  };
}

function nodeMessage(n: CompanyHierarchyNode): contactsV1.CompanyHierarchyNode {
  return { company: summaryMessage(n.company), subsidiaries: n.subsidiaries.map(nodeMessage) };
}
