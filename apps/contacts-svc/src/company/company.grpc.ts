import { contactsV1 } from '@crm/contracts';
import { bindService, type ServiceBinding } from '@crm/platform';
import { companyMask, fromCompanyMessage, toCompanyMessage } from './company.mapper.ts';
import type { CompanyService } from './company.service.ts';

/** gRPC edge of companies: proto ⇄ domain only. */
export function companyGrpc(service: CompanyService): ServiceBinding {
  return bindService('crm.contacts.v1.CompanyService', contactsV1.CompanyServiceService, {
    createCompany: async (req) => ({ company: toCompanyMessage(await service.create(fromCompanyMessage(req.company))) }),
    getCompany: async (req) => ({ company: toCompanyMessage(await service.get(req.id)) }),
    listCompanies: async (req) => {
      const page = await service.list({
        pageSize: req.pageSize,
        cursor: req.pageToken || undefined,
        query: req.query || undefined,
        industry: req.industry || undefined,
        parentCompanyId: req.parentCompanyId || undefined,
      });
      return { companies: page.items.map(toCompanyMessage), nextPageToken: page.nextCursor ?? '' };
    },
    updateCompany: async (req) => {
      const fields = fromCompanyMessage(req.company);
      const company = await service.update(req.company?.id ?? '', fields, companyMask(req.updateMask), optionalVersion(req.expectedVersion));
      return { company: toCompanyMessage(company) };
    },
    deleteCompany: async (req) => {
      await service.delete(req.id, optionalVersion(req.expectedVersion));
      return {};
    },
  });
}

/** int64 (string in ts-proto) → number, or undefined when not sent. */
export function optionalVersion(v: string | undefined): number | undefined {
  return v === undefined ? undefined : Number(v);
}
