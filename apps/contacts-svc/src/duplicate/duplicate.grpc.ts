import { companyRecord, contactRecord, duplicateV1, messageValues } from '@crm/contracts';
import { bindHandlers, DomainError, requestEntityManager, requireContext, type Orm, type RecordService, type ServiceBinding } from '@crm/platform';
import { companyService } from '../company/company.service.ts';
import { contactService } from '../contact/contact.service.ts';
import { typedHandler } from '../customer/customer.grpc.ts';
import { findDuplicateCandidates, type CompanyDraft, type ContactDraft, type DuplicateCandidate } from './duplicate.candidates.ts';
import { allowingDuplicates, DuplicateCandidatesError } from './duplicate.guard.ts';
import { DuplicatePairs } from './duplicate.pairs.ts';
import type { DuplicateObject } from './duplicate.rules.ts';
import { duplicateThreshold, getDuplicateSettings, updateDuplicateSettings, type DuplicateSettings } from './duplicate.settings.ts';

/**
 * `crm.contacts.v1.DuplicateService`: candidates for drafts, creates with the duplicate check,
 * the pairs lists and the organization's settings — proto ⇄ domain only.
 */
export function bindDuplicateService(orm: Orm): ServiceBinding {
  const companies = companyService(orm);
  const contacts = contactService(orm);
  const pairs = new DuplicatePairs(orm);

  /** Candidates of a draft (its own id, when set, left out), at least `minScore` (0: the threshold). */
  const find = async (object: DuplicateObject, message: { id?: string } | undefined, minScore: number) => {
    const ctx = requireContext();
    const em = requestEntityManager(orm);
    if (!Number.isInteger(minScore) || minScore < 0 || minScore > 100) {
      throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'minScore must be a whole number 1..100', [
        { field: 'minScore', message: 'a whole number 1..100' },
      ]);
    }
    const score = minScore || (await duplicateThreshold(em, ctx.organizationId));
    const record = object === 'company' ? companyRecord : contactRecord;
    const draft = messageValues(record, (message ?? {}) as Record<string, unknown>) as CompanyDraft & ContactDraft;
    const candidates = await findDuplicateCandidates(em, object, draft, {
      organizationId: ctx.organizationId,
      minScore: score,
      excludeIds: message?.id ? [message.id] : [],
    });
    return { candidates: candidates.map(candidateMessage), minScore: score };
  };

  /** The kit's create with the duplicate check on or off; refused drafts answer their candidates. */
  const create = async <F extends RecordService<typeof companyRecord.fields> | RecordService<typeof contactRecord.fields>>(
    service: F,
    message: object | undefined,
    allow: boolean,
  ): Promise<{ record?: Record<string, unknown>; candidates: duplicateV1.DuplicateCandidate[]; threshold: number }> => {
    if (!message)
      throw new DomainError('invalid_argument', 'VALIDATION_FAILED', `${service.record.name} is required`, [
        { field: service.record.name, message: 'is required' },
      ]);
    try {
      const row = await allowingDuplicates(allow, () => service.create(messageValues(service.record, message as Record<string, unknown>)));
      return { record: service.toMessage(row as never), candidates: [], threshold: 0 };
    } catch (error) {
      if (!(error instanceof DuplicateCandidatesError)) throw error;
      return { candidates: error.candidates.map(candidateMessage), threshold: error.threshold };
    }
  };

  return bindHandlers(duplicateV1.DuplicateServiceService, {
    findCompanyDuplicates: typedHandler<duplicateV1.FindCompanyDuplicatesRequest>(async (req) => {
      const response: duplicateV1.FindCompanyDuplicatesResponse = await find('company', req.company, req.minScore);
      return response;
    }),
    findContactDuplicates: typedHandler<duplicateV1.FindContactDuplicatesRequest>(async (req) => {
      const response: duplicateV1.FindContactDuplicatesResponse = await find('contact', req.contact, req.minScore);
      return response;
    }),
    createCompanyWithDuplicateCheck: typedHandler<duplicateV1.CreateCompanyWithDuplicateCheckRequest>(async (req) => {
      const { record, candidates, threshold } = await create(companies, req.company, req.allowDuplicate);
      return { company: record, candidates, threshold };
    }),
    createContactWithDuplicateCheck: typedHandler<duplicateV1.CreateContactWithDuplicateCheckRequest>(async (req) => {
      const { record, candidates, threshold } = await create(contacts, req.contact, req.allowDuplicate);
      return { contact: record, candidates, threshold };
    }),
    listDuplicatePairs: typedHandler<duplicateV1.ListDuplicatePairsRequest>(async (req) => {
      const object = objectName(req.object);
      const page = await pairs.list(object, { minScore: req.minScore || undefined, pageSize: req.pageSize || undefined, cursor: req.pageToken || undefined });
      const records = [...page.records.values()];
      return {
        pairs: page.pairs.map((p) => ({ ...p, reasons: p.reasons.map((r) => ({ rule: r.rule, weight: r.weight })) })),
        companies: object === 'company' ? records : [],
        contacts: object === 'contact' ? records : [],
        nextPageToken: page.nextCursor ?? '',
        minScore: page.minScore,
      };
    }),
    getDuplicateSettings: typedHandler<duplicateV1.GetDuplicateSettingsRequest>(async () => ({ settings: settingsMessage(await getDuplicateSettings(orm)) })),
    updateDuplicateSettings: typedHandler<duplicateV1.UpdateDuplicateSettingsRequest>(async (req) => ({
      settings: settingsMessage(await updateDuplicateSettings(orm, req.settings?.threshold)),
    })),
  });
}

/** The object of a request; INVALID_ARGUMENT naming `object` when unset. */
export function objectName(object: duplicateV1.CustomerObject): DuplicateObject {
  if (object === duplicateV1.CustomerObject.CUSTOMER_OBJECT_COMPANY) return 'company';
  if (object === duplicateV1.CustomerObject.CUSTOMER_OBJECT_CONTACT) return 'contact';
  throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'object is required: company or contact', [
    { field: 'object', message: 'company or contact' },
  ]);
}

function candidateMessage(c: DuplicateCandidate): duplicateV1.DuplicateCandidate {
  return { recordId: c.recordId, score: c.score, reasons: c.reasons.map((r) => ({ rule: r.rule, weight: r.weight })) };
}

function settingsMessage(s: DuplicateSettings): duplicateV1.DuplicateSettings {
  return { threshold: s.threshold, updateTime: s.updatedAt ?? undefined, updatedBy: s.updatedBy ?? '' };
}
