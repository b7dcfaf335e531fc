import type { FieldOptions, FieldType } from '../db/schema.ts';
import type { ErrorDetail } from '../errors.ts';

// Canonical stored forms (criteria SQL relies on them): text-like → trimmed string; number/currency →
// JSON number; date → 'YYYY-MM-DD'; datetime → ISO-8601 UTC with milliseconds; multi_picklist →
// string[] (deduplicated, in picklist order); boolean → true/false; lookup/user → uuid string.
// An empty value is stored as absent.

export interface FieldMeta {
  apiName: string;
  label: string;
  type: FieldType;
  required: boolean;
  options: FieldOptions;
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// A practical check: an RFC 5322 dot-atom local part (UTF-8 allowed, RFC 6531; quoted forms refused)
// and a domain of LDH or international labels.
const ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~\\u00a1-\\uffff-]+";
const LABEL = '[A-Za-z0-9\\u00a1-\\uffff]([A-Za-z0-9\\u00a1-\\uffff-]{0,61}[A-Za-z0-9\\u00a1-\\uffff])?';
const EMAIL_RE = new RegExp(`^${ATOM}(\\.${ATOM})*@(${LABEL}\\.)+[A-Za-z\\u00a1-\\uffff]{2,63}$`, 'u');
const PHONE_RE = /^[+()0-9 .\-/x]{3,40}$/i;
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

export const TEXT_MAX = 255;
export const LONG_TEXT_MAX = 32_000;

export function isValidEmail(v: string): boolean {
  if (v.length > 254) return false;
  const at = v.lastIndexOf('@');
  if (at < 1 || at > 64) return false;
  return EMAIL_RE.test(v);
}

export function isValidDate(v: string): boolean {
  const m = DATE_RE.exec(v);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return (
    d.getUTCFullYear() === Number(m[1]) &&
    d.getUTCMonth() === Number(m[2]) - 1 &&
    d.getUTCDate() === Number(m[3])
  );
}

// Control characters other than tab, CR and LF never belong in a field value.
const hasControlChars = (s: string) => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c === 0x7f) return true;
  }
  return false;
};

const LONE_SURROGATE = /\p{Cs}/u;

type Result = { ok: true; value: unknown } | { ok: false; message: string };
const ok = (value: unknown): Result => ({ ok: true, value });
const fail = (message: string): Result => ({ ok: false, message });

function str(raw: unknown): string | undefined {
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'number' && Number.isFinite(raw)) return String(raw);
  return undefined;
}

/** Validates one value for a field and returns its canonical form (undefined = empty). */
export function normaliseValue(field: FieldMeta, raw: unknown): Result {
  if (raw === null || raw === undefined || (typeof raw === 'string' && raw.trim() === '')) {
    if (field.type === 'boolean') return ok(false);
    return ok(undefined);
  }
  switch (field.type) {
    case 'text':
    case 'long_text':
    case 'phone':
    case 'email':
    case 'picklist': {
      const s0 = str(raw);
      if (s0 === undefined) return fail('must be a string');
      const s = s0.trim();
      const max = field.type === 'long_text' ? LONG_TEXT_MAX : (field.options.max_length ?? TEXT_MAX);
      if (s.length > max) return fail(`is longer than ${max} characters`);
      if (field.type !== 'long_text' && /[\r\n]/.test(s)) return fail('must be a single line');
      if (hasControlChars(s)) return fail('contains control characters');
      // A lone surrogate (possible in JSON input) is refused by Postgres's jsonb: say so instead.
      if (LONE_SURROGATE.test(s)) return fail('is not valid Unicode text');
      if (field.type === 'email' && !isValidEmail(s)) return fail(`"${s}" is not a valid email address`);
      if (field.type === 'phone' && !PHONE_RE.test(s)) return fail(`"${s}" is not a valid phone number`);
      if (field.type === 'picklist') {
        const values = field.options.values ?? [];
        const match = values.find((v) => v.toLowerCase() === s.toLowerCase());
        if (!match) return fail(`"${s}" is not one of: ${values.join(', ')}`);
        return ok(match);
      }
      return ok(s);
    }
    case 'number':
    case 'currency': {
      const n =
        typeof raw === 'number' ? raw : typeof raw === 'string' ? Number(raw.trim().replace(/,/g, '')) : NaN;
      if (!Number.isFinite(n)) return fail(`"${String(raw)}" is not a number`);
      if (Math.abs(n) > 1e15) return fail('is out of range');
      const decimals = field.options.decimals ?? (field.type === 'currency' ? 2 : undefined);
      return ok(decimals === undefined ? n : Math.round(n * 10 ** decimals) / 10 ** decimals);
    }
    case 'date': {
      const s = str(raw)?.trim();
      if (!s) return fail('must be a date (YYYY-MM-DD)');
      const d = s.length > 10 && /^\d{4}-\d{2}-\d{2}T/.test(s) ? s.slice(0, 10) : s;
      if (!isValidDate(d)) return fail(`"${s}" is not a valid date (YYYY-MM-DD)`);
      return ok(d);
    }
    case 'datetime': {
      const s = str(raw)?.trim();
      if (!s || !/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(s))
        return fail(`"${String(raw)}" is not a valid date-time (ISO 8601)`);
      const t = Date.parse(s.length === 10 ? `${s}T00:00:00Z` : s.replace(' ', 'T'));
      if (Number.isNaN(t)) return fail(`"${s}" is not a valid date-time (ISO 8601)`);
      return ok(new Date(t).toISOString());
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return ok(raw);
      const s = String(raw).trim().toLowerCase();
      if (['true', 'yes', '1', 'y', 'on'].includes(s)) return ok(true);
      if (['false', 'no', '0', 'n', 'off'].includes(s)) return ok(false);
      return fail(`"${String(raw)}" is not true or false`);
    }
    case 'multi_picklist': {
      const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(';') : null;
      if (!items) return fail('must be a list of values');
      const values = field.options.values ?? [];
      const chosen = new Set<string>();
      for (const item of items) {
        const s = String(item).trim();
        if (!s) continue;
        const match = values.find((v) => v.toLowerCase() === s.toLowerCase());
        if (!match) return fail(`"${s}" is not one of: ${values.join(', ')}`);
        chosen.add(match);
      }
      const list = values.filter((v) => chosen.has(v));
      return ok(list.length ? list : undefined);
    }
    case 'lookup':
    case 'user': {
      const s = str(raw)?.trim();
      if (!s || !UUID_RE.test(s)) return fail(`"${String(raw)}" is not a valid id`);
      return ok(s.toLowerCase());
    }
  }
}

/**
 * Validates a set of values against the module's fields. `partial` (an edit) checks only the
 * fields given; otherwise required fields must be present. Unknown fields are errors.
 */
export function normaliseData(
  fields: FieldMeta[],
  input: Record<string, unknown>,
  opts: { partial: boolean; existing?: Record<string, unknown> },
): { data: Record<string, unknown>; errors: ErrorDetail[] } {
  const byName = new Map(fields.map((f) => [f.apiName, f]));
  const errors: ErrorDetail[] = [];
  const data: Record<string, unknown> = { ...(opts.existing ?? {}) };
  for (const key of Object.keys(input)) {
    if (!byName.has(key)) errors.push({ path: key, message: `unknown field "${key}"` });
  }
  for (const f of fields) {
    const given = Object.hasOwn(input, f.apiName);
    if (!given && (opts.partial || f.type !== 'boolean')) continue;
    const r = normaliseValue(f, given ? input[f.apiName] : undefined);
    if (!r.ok) {
      errors.push({ path: f.apiName, message: `${f.label} ${r.message}` });
      continue;
    }
    if (r.value === undefined) delete data[f.apiName];
    else data[f.apiName] = r.value;
  }
  for (const f of fields) {
    if (f.required && (data[f.apiName] === undefined || data[f.apiName] === null))
      if (!errors.some((e) => e.path === f.apiName))
        errors.push({ path: f.apiName, message: `${f.label} is required` });
  }
  return { data, errors };
}
