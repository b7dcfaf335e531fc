// Pure CSV helpers shared by export and reports.

/**
 * Spreadsheet apps execute cells starting with = + - @ (and tab/CR, which they strip first), so text
 * cells that start with one get a leading apostrophe (OWASP's CSV injection advice).
 */
export function csvSafe(value: string): string {
  return /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
}

/** Maps CSV headers to fields by api name or label, ignoring case, spaces and punctuation. */
export function suggestMapping(headers: string[], fields: { apiName: string; label: string }[]) {
  const norm = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '');
  const byKey = new Map<string, string>();
  for (const f of fields) {
    byKey.set(norm(f.apiName), f.apiName);
    byKey.set(norm(f.label), f.apiName);
  }
  const used = new Set<string>();
  const mapping: Record<string, string | null> = {};
  for (const h of headers) {
    const hit = byKey.get(norm(h));
    mapping[h] = hit && !used.has(hit) ? hit : null;
    if (hit) used.add(hit);
  }
  return mapping;
}
