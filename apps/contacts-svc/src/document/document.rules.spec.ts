import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { RequestContext, Role } from '@crm/platform';
import {
  canChange,
  canSee,
  checkName,
  daysBetween,
  dueThreshold,
  isCalendarDate,
  safeFileName,
  sniffContentType,
  Utf8Check,
  utcDate,
  type VisibilityName,
} from './document.rules.ts';

const as = (role: Role, userId = 'u-1'): RequestContext => ({ organizationId: 'o', userId, roles: [role], requestId: 'r' });

describe('visibility and changes', () => {
  const cases: [Role, 'own' | 'other', VisibilityName, boolean, boolean][] = [
    // role, uploader, visibility → sees, changes
    ['crm-admin', 'other', 'private', true, true],
    ['crm-manager', 'other', 'private', true, true],
    ['crm-rep', 'other', 'private', false, false],
    ['crm-rep', 'other', 'public', true, false],
    ['crm-rep', 'own', 'private', true, true],
    ['crm-viewer', 'other', 'private', false, false],
    ['crm-viewer', 'other', 'public', true, false],
    ['crm-viewer', 'own', 'public', true, false],
  ];
  it.each(cases)('%s, %s document, %s: sees %s, changes %s', (role, uploader, visibility, sees, changes) => {
    const doc = { createdBy: uploader === 'own' ? 'u-1' : 'u-2', visibility };
    expect([canSee(as(role), doc), canChange(as(role), doc)]).toEqual([sees, changes]);
  });
});

describe('dates and thresholds', () => {
  it('accepts real calendar dates only', () => {
    expect(['2028-02-29', '2026-12-31', '1900-01-01'].map(isCalendarDate)).toEqual([true, true, true]);
    expect(['2026-02-29', '2026-13-01', '2026-1-1', '1899-12-31', '2026-04-31', ' 2026-01-01', '2026-01-01T00:00:00Z'].map(isCalendarDate)).toEqual(
      Array(7).fill(false),
    );
  });

  it('takes the nearest threshold reached (30, 7, 0), none while more than 30 days remain', () => {
    const today = '2030-01-01';
    const due = (offset: number) => dueThreshold(utcDate(new Date(Date.UTC(2030, 0, 1 + offset))), today);
    expect([31, 30, 8, 7, 1, 0, -1, -400].map(due)).toEqual([undefined, 30, 30, 7, 7, 0, 0, 0]);
  });

  it('counts whole days across month, year and leap-day boundaries (property)', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('1990-01-01'), max: new Date('2090-01-01'), noInvalidDate: true }), fc.integer({ min: -2000, max: 2000 }), (d, n) => {
        const from = utcDate(d);
        const to = utcDate(new Date(Date.parse(`${from}T00:00:00Z`) + n * 86_400_000));
        expect(daysBetween(from, to)).toBe(n);
      }),
    );
  });
});

describe('names', () => {
  it('trims names and refuses empty, over-long or control-character ones', () => {
    expect(checkName('  Master agreement ')).toBe('Master agreement');
    expect(checkName('合同'.repeat(127) + '合')).toHaveLength(255);
    expect([checkName('   '), checkName('x'.repeat(256)), checkName('a\u0000b'), checkName('tab\there')]).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('keeps only the last path segment of a file name, without control characters', () => {
    expect(safeFileName('C:\\Users\\ann\\Angebot.pdf')).toBe('Angebot.pdf');
    expect(safeFileName('../../etc/passwd')).toBe('passwd');
    expect(safeFileName('a\r\nb.txt')).toBe('ab.txt');
    expect(safeFileName('invoice\u202Efdp.exe')).toBe('invoicefdp.exe');
    expect([safeFileName(undefined), safeFileName(''), safeFileName('dir/'), safeFileName('..')]).toEqual(['document', 'document', 'document', 'document']);
  });

  it('never yields a path, a control character or more than 255 characters (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 600 }), (raw) => {
        const name = safeFileName(raw);
        // eslint-disable-next-line no-control-regex
        expect(name).not.toMatch(/[/\\\u0000-\u001f\u007f-\u009f\u202a-\u202e]/);
        expect([...name].length).toBeLessThanOrEqual(255);
        expect(['', '.', '..']).not.toContain(name);
      }),
    );
  });
});

describe('content type from the bytes', () => {
  it('detects signatures, then UTF-8 text, else octet-stream', async () => {
    expect(await sniffContentType(Buffer.from('%PDF-1.7\n'), false)).toBe('application/pdf');
    expect(await sniffContentType(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]), false)).toBe('image/png');
    expect(await sniffContentType(Buffer.from('plain words'), true)).toBe('text/plain; charset=utf-8');
    expect(await sniffContentType(Buffer.from('plain words'), false)).toBe('application/octet-stream');
    expect(await sniffContentType(Buffer.alloc(0), true)).toBe('application/octet-stream');
  });

  it('calls any UTF-8 text without NUL valid however it is cut into chunks, as TextDecoder does (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), fc.array(fc.nat({ max: 50 }), { maxLength: 10 }), (text, cuts) => {
        const bytes = Buffer.from(text, 'utf8');
        const check = new Utf8Check();
        let at = 0;
        for (const cut of cuts) {
          check.add(bytes.subarray(at, at + cut));
          at += cut;
        }
        check.add(bytes.subarray(at));
        expect(check.done()).toBe(!text.includes('\u0000'));
      }),
    );
  });

  it('agrees with a fatal TextDecoder on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat({ max: 64 }), (bytes, cut) => {
        let valid = !bytes.includes(0);
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(bytes);
        } catch {
          valid = false;
        }
        const check = new Utf8Check();
        check.add(bytes.subarray(0, cut));
        check.add(bytes.subarray(cut));
        expect(check.done()).toBe(valid);
      }),
    );
  });
});
