import { fileTypeFromBuffer } from 'file-type';
import { hasAnyRole, type RequestContext } from '@crm/platform';

/**
 * The domain rules of documents, pure: types and visibilities, metadata validation, who may see
 * and change a document, the content type from the bytes, the expiry thresholds.
 */

/** Kinds of document (`documentType`), as the issue lists them. */
export const DOCUMENT_TYPES = ['contract', 'proposal', 'invoice', 'id_document', 'certificate', 'other'] as const;
/** A `documentType` as the API and the `document.document_type` column spell it (proto: `DOCUMENT_TYPE_<NAME>`). */
export type DocumentTypeName = (typeof DOCUMENT_TYPES)[number];

/** `public`: every user of the organization; `private`: the uploader, crm-manager and crm-admin only. */
export const VISIBILITIES = ['public', 'private'] as const;
/** A `visibility` as the API and the `document.visibility` column spell it (proto: `DOCUMENT_VISIBILITY_<NAME>`). */
export type VisibilityName = (typeof VISIBILITIES)[number];

/** Largest document: 25 MiB (26,214,400 bytes). */
export const DOCUMENT_MAX_BYTES = 25 * 1024 * 1024;
/** Longest `name` and stored file name, in characters. */
export const NAME_MAX = 255;
/** Days before `expiresOn` at which `crm.contacts.document.expiring` is emitted, most distant first. */
export const EXPIRY_THRESHOLDS = [30, 7, 0] as const;
/** Largest `expiringWithinDays` of a list (ten years). */
export const EXPIRING_WITHIN_MAX_DAYS = 3650;

/** The metadata a client may set: on upload, and (each optional) on PATCH. */
export interface DocumentMetadata {
  name: string;
  documentType: DocumentTypeName;
  /** `YYYY-MM-DD` or null. */
  expiresOn: string | null;
  visibility: VisibilityName;
}

/** Who uploaded a document and who may see it: what visibility decisions need. */
export interface DocumentAccess {
  createdBy: string;
  visibility: VisibilityName;
}

/**
 * Whether `ctx` may see the document (metadata and content): public ones everybody of the
 * organization; private ones their uploader, crm-manager and crm-admin. Anyone else must get
 * NOT_FOUND, as for a document that does not exist (issue 8: "private: uploader, managers and
 * admins only").
 */
export function canSee(ctx: RequestContext, doc: DocumentAccess): boolean {
  return doc.visibility === 'public' || seesEveryPrivateDocument(ctx) || doc.createdBy === ctx.userId;
}

/** crm-admin and crm-manager see (and change) every document of the organization. */
export function seesEveryPrivateDocument(ctx: RequestContext): boolean {
  return hasAnyRole(ctx, 'crm-admin', 'crm-manager');
}

/** Roles that may upload documents (crm-viewer reads only). */
export const UPLOAD_ROLES = ['crm-admin', 'crm-manager', 'crm-rep'] as const;

/**
 * Whether `ctx` may change or delete a document it can see: crm-admin and crm-manager any, a
 * crm-rep the documents they uploaded (as reps change only what they own), crm-viewer none.
 */
export function canChange(ctx: RequestContext, doc: DocumentAccess): boolean {
  if (seesEveryPrivateDocument(ctx)) return true;
  return hasAnyRole(ctx, 'crm-rep') && doc.createdBy === ctx.userId;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** True for a real calendar date `YYYY-MM-DD` in years 1900..9999. */
export function isCalendarDate(text: string): boolean {
  const m = DATE.exec(text);
  if (!m) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (year < 1900) return false;
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/**
 * C0/C1 control characters (and DEL) and the bidirectional overrides and isolates (which can make
 * `invoice<U+202E>fdp.exe` display as `invoiceexe.pdf`): never part of a name or a file name.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * A display name: trimmed, 1..{@link NAME_MAX} characters, no control characters; undefined when
 * it is not one (the caller reports the field).
 */
export function checkName(name: string): string | undefined {
  const trimmed = name.trim();
  if (trimmed.length === 0 || [...trimmed].length > NAME_MAX || CONTROL.test(trimmed)) return undefined;
  return trimmed;
}

/**
 * The client's file name made harmless to store and to show back: the last path segment only
 * (`C:\\x\\a.pdf`, `../a.pdf` → `a.pdf`), control and bidi-override characters removed, at most {@link NAME_MAX}
 * characters; `document` when nothing is left. Never used as a path.
 */
export function safeFileName(raw: string | undefined): string {
  const last = (raw ?? '').split(/[/\\]/).pop() ?? '';
  const cleaned = [...last.replace(CONTROLS, '').trim()].slice(0, NAME_MAX).join('').trim();
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? 'document' : cleaned;
}

/** How many leading bytes the content type is sniffed from (OOXML files need a few entries of their zip). */
export const SNIFF_BYTES = 64 * 1024;

/**
 * The media type of content from its bytes, never from the client: `file-type`'s signature
 * detection on its first bytes (`head`, up to {@link SNIFF_BYTES}); failing that
 * `text/plain; charset=utf-8` for content that is entirely valid UTF-8 without NUL bytes
 * (`utf8` — checked over the whole content while it streamed), else `application/octet-stream`.
 */
export async function sniffContentType(head: Uint8Array, utf8: boolean): Promise<string> {
  if (head.length > 0) {
    const detected = await fileTypeFromBuffer(head);
    if (detected) return detected.mime;
  }
  return utf8 && head.length > 0 ? 'text/plain; charset=utf-8' : 'application/octet-stream';
}

/**
 * Checks UTF-8 validity of a stream piece by piece (`add` each chunk, then `done()`): true when
 * every byte sequence was valid UTF-8 (WHATWG decoder, fatal mode: overlongs, surrogates and
 * truncated sequences fail) and no NUL byte occurred.
 */
export class Utf8Check {
  readonly #decoder = new TextDecoder('utf-8', { fatal: true });
  #valid = true;

  /**
   * Checks the next piece of the content, in order (a multi-byte sequence may span two pieces).
   * Never throws: an invalid sequence or a NUL byte only makes {@link done} return false (and
   * later pieces are not looked at).
   */
  add(chunk: Uint8Array): void {
    if (!this.#valid) return;
    if (chunk.includes(0)) {
      this.#valid = false;
      return;
    }
    try {
      this.#decoder.decode(chunk, { stream: true });
    } catch {
      this.#valid = false;
    }
  }

  /**
   * Whether the whole content was valid UTF-8 without NUL bytes; call once, after the last
   * {@link add}: a sequence still incomplete at the end (content cut inside a character) is
   * invalid.
   */
  done(): boolean {
    if (!this.#valid) return false;
    try {
      this.#decoder.decode();
      return true;
    } catch {
      return false;
    }
  }
}

/** `date` (a Date) as the UTC calendar date `YYYY-MM-DD`. */
export function utcDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** Whole days from UTC date `from` to UTC date `to` (both `YYYY-MM-DD`); negative when `to` is earlier. */
export function daysBetween(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000);
}

/**
 * The threshold whose notice is due for a document expiring on `expiresOn`, checked on UTC date
 * `today`: the nearest of {@link EXPIRY_THRESHOLDS} already reached (`expiresOn − threshold ≤
 * today`), so a document first seen past several thresholds gets the most urgent notice only;
 * undefined while more than 30 days remain. Expired documents are at threshold 0.
 */
export function dueThreshold(expiresOn: string, today: string): number | undefined {
  const left = daysBetween(today, expiresOn);
  const reached = EXPIRY_THRESHOLDS.filter((t) => left <= t);
  return reached.length ? Math.min(...reached) : undefined;
}
