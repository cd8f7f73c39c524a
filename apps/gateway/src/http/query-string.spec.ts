import { describe, expect, it } from '@jest/globals';
import { queryViolations } from './query-string.ts';

describe('queryViolations', () => {
  it('accepts text, empty values, + as space and encoded reserved characters', () => {
    expect(queryViolations('q=ada%20love&limit=50&cursor=&flag&q2=a+b&p=%25%5F%5C%27%F0%9F%A6%84')).toEqual([]);
  });

  it('names each parameter whose value or name is no UTF-8 text or holds NUL', () => {
    expect(queryViolations('q=%ED%A0%80&limit=5')).toEqual([{ field: 'q', message: expect.stringContaining('UTF-8') }]);
    expect(queryViolations('a=%FF&b=%&c=%zz&d=%E2%82')).toEqual(['a', 'b', 'c', 'd'].map((field) => ({ field, message: expect.stringContaining('UTF-8') })));
    expect(queryViolations('q=a%00b')).toEqual([{ field: 'q', message: 'must not contain NUL characters' }]);
    expect(queryViolations('%00=1&%FF=2')).toEqual([
      { field: 'query', message: 'must not contain NUL characters' },
      { field: 'query', message: expect.stringContaining('UTF-8') },
    ]);
  });
});
