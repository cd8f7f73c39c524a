import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { canonical, checkMergeRequest, fieldSources, isEmptyValue, restoreColumns, unionCustomFields, unionTags, type Row } from './merge.rules.ts';

const S = '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f01';
const A = '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f02';
const B = '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f03';

describe('checkMergeRequest', () => {
  const fields = (input: Parameters<typeof checkMergeRequest>[0]) => checkMergeRequest(input, ['jobTitle', 'email']).violations.map((v) => v.field);

  it('accepts 1..10 distinct ids without the survivor, lower-cased, and choices naming them', () => {
    const { request, violations } = checkMergeRequest(
      { survivorId: S.toUpperCase(), mergedIds: [A.toUpperCase(), B], fieldChoices: { email: A.toUpperCase() } },
      ['email'],
    );
    expect(violations).toEqual([]);
    expect(request).toEqual({ survivorId: S, mergedIds: [A, B], fieldChoices: { email: A } });
  });

  it('names what is wrong', () => {
    expect(fields({ survivorId: S, mergedIds: [], fieldChoices: {} })).toEqual(['mergedIds']);
    expect(
      fields({ survivorId: S, mergedIds: Array.from({ length: 11 }, (_, i) => `0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f${String(10 + i)}`), fieldChoices: {} }),
    ).toEqual(['mergedIds']);
    expect(fields({ survivorId: S, mergedIds: [A, S, A, 'x'], fieldChoices: {} })).toEqual(['mergedIds.1', 'mergedIds.2', 'mergedIds.3']);
    expect(fields({ survivorId: S, mergedIds: [A], fieldChoices: { tags: A, email: B } })).toEqual(['fieldChoices.tags', 'fieldChoices.email']);
  });
});

describe('fieldSources', () => {
  it('takes the choice, else the survivor’s value, else the first merged record that has one', () => {
    const values = new Map<string, Record<string, unknown>>([
      [S, { jobTitle: 'CTO', email: null, phone: '', tags: [] }],
      [A, { jobTitle: 'CEO', email: null, phone: '+4930901820', tags: ['t'] }],
      [B, { jobTitle: null, email: 'b@example.com', phone: '+4930901821', tags: [] }],
    ]);
    const request = { survivorId: S, mergedIds: [A, B], fieldChoices: { jobTitle: A } };
    expect(fieldSources(['jobTitle', 'email', 'phone', 'tags', 'department'], request, values)).toEqual({
      jobTitle: A,
      email: B,
      phone: A,
      tags: A,
      department: S,
    });
  });
});

describe('unions', () => {
  it('keep each tag once in order, and custom fields key by key with the first record winning', () => {
    expect(unionTags([['a', 'b'], null, ['b', 'c']])).toEqual(['a', 'b', 'c']);
    expect(unionCustomFields([{ tier: 'gold' }, { tier: 'silver', size: 'xl' }, null])).toEqual({ tier: 'gold', size: 'xl' });
    expect(unionCustomFields([null, {}])).toBeNull();
  });

  it('treat null, empty text, lists and objects as empty, never false or 0', () => {
    expect([null, undefined, '', [], {}].map(isEmptyValue)).toEqual([true, true, true, true, true]);
    expect([false, 0, 'x', ['a'], { a: 1 }, new Date(0)].map(isEmptyValue)).toEqual([false, false, false, false, false, false]);
  });
});

describe('restoreColumns (the three-way restore of an undo)', () => {
  const json = fc.oneof(fc.constant(null), fc.string({ maxLength: 5 }), fc.integer(), fc.boolean());
  const row = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), json);

  it('restores every column the merge changed when nothing changed since: the row equals the one before', () => {
    fc.assert(
      fc.property(row, row, (before, after) => {
        const columns = ['a', 'b', 'c', 'd'];
        const { restore, conflicts } = restoreColumns(before, after, after, columns);
        expect(conflicts).toEqual([]);
        const result: Row = { ...after, ...restore };
        for (const c of columns) expect(canonical(result[c])).toBe(canonical(before[c]));
      }),
    );
  });

  it('keeps a later value of a column the merge changed and reports it; never writes a column the merge left alone', () => {
    fc.assert(
      fc.property(row, row, row, (before, after, current) => {
        const columns = ['a', 'b', 'c', 'd'];
        const { restore, conflicts } = restoreColumns(before, after, current, columns);
        for (const c of columns) {
          const changedByMerge = canonical(before[c]) !== canonical(after[c]);
          const changedSince = canonical(current[c]) !== canonical(after[c]);
          expect(c in restore).toBe(changedByMerge && !changedSince);
          expect(conflicts.includes(c)).toBe(changedByMerge && changedSince);
        }
      }),
    );
  });

  it('restores tags as a set: removes what the merge added, keeps what came since', () => {
    const { restore, conflicts } = restoreColumns({ tags: ['a'] }, { tags: ['a', 'b', 'c'] }, { tags: ['a', 'c', 'd'] }, ['tags'], { setColumns: ['tags'] });
    expect(conflicts).toEqual([]);
    expect(restore).toEqual({ tags: ['a', 'd'] });
  });

  it('compares JSON values whatever their key order', () => {
    expect(restoreColumns({ cf: null }, { cf: { x: 1, y: 2 } }, { cf: { y: 2, x: 1 } }, ['cf'])).toEqual({ restore: { cf: null }, conflicts: [] });
  });

  it('restores custom fields key by key: keys changed since are conflicts, the others are restored', () => {
    const before = { cf: { size: 'm', tier: 'gold' } };
    const after = { cf: { size: 'xl', tier: 'gold', region: 'eu', vip: 'yes' } };
    // since the merge: size changed again, region kept, vip changed, a new key added
    const current = { cf: { size: 'xxl', tier: 'gold', region: 'eu', vip: 'no', later: 'x' } };
    expect(restoreColumns(before, after, current, ['cf'], { objectColumns: ['cf'] })).toEqual({
      restore: { cf: { size: 'xxl', tier: 'gold', vip: 'no', later: 'x' } },
      conflicts: ['cf.size', 'cf.vip'],
    });
  });

  it('per key: a key the merge changed is back to its value before unless changed since; keys it did not touch keep their value', () => {
    const obj = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), fc.oneof(fc.string({ maxLength: 3 }), fc.integer()));
    fc.assert(
      fc.property(obj, obj, obj, (before, after, current) => {
        const { restore, conflicts } = restoreColumns({ cf: before }, { cf: after }, { cf: current }, ['cf'], { objectColumns: ['cf'] });
        const result = (restore['cf'] === undefined ? current : (restore['cf'] ?? {})) as Record<string, unknown>;
        for (const key of ['a', 'b', 'c', 'd']) {
          const byMerge = canonical(before[key]) !== canonical(after[key]);
          const since = canonical(current[key]) !== canonical(after[key]);
          if (byMerge && !since) expect(canonical(result[key])).toBe(canonical(before[key]));
          else expect(canonical(result[key])).toBe(canonical(current[key]));
          expect(conflicts.includes(`cf.${key}`)).toBe(byMerge && since);
        }
      }),
    );
  });
});
