/**
 * Strong ETags from the record version (`"7"`), and `If-Match` parsing (RFC 9110 §13.1.1:
 * strong comparison). Returns `undefined` for no header or `*` (no version check), the version for
 * `"N"`, and `null` for anything else (which can never match → 412).
 */
export function etagOf(version: number): string {
  return `"${version}"`;
}

export function expectedVersion(ifMatch: string | undefined): number | undefined | null {
  if (ifMatch === undefined) return undefined;
  const value = ifMatch.trim();
  if (value === '*') return undefined;
  const m = /^"(\d{1,15})"$/.exec(value);
  return m ? Number(m[1]) : null;
}
