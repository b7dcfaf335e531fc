// Dates, numbers and money shown in the user's locale and time zone (from /api/me), with Intl.

export interface FormatOptions {
  locale: string;
  timeZone: string;
  currency: string;
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

function safeLocale(locale: string): string {
  try {
    return Intl.getCanonicalLocales(locale)[0] ?? 'en-US';
  } catch {
    return 'en-US';
  }
}

function safeTimeZone(tz: string): string {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return tz;
  } catch {
    return 'UTC';
  }
}

/** Milliseconds to add to a UTC instant to get the wall-clock time in `timeZone` at that instant. */
export function tzOffsetMs(instant: Date, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(instant);
  const n = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const wall = Date.UTC(n('year'), n('month') - 1, n('day'), n('hour'), n('minute'), n('second'));
  return wall - Math.floor(instant.getTime() / 1000) * 1000;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** An ISO instant → the 'YYYY-MM-DDTHH:mm' a datetime-local input shows, in `timeZone`. */
export function isoToLocalInput(iso: string | null | undefined, timeZone: string): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const w = new Date(d.getTime() + tzOffsetMs(d, timeZone));
  return `${w.getUTCFullYear()}-${pad(w.getUTCMonth() + 1)}-${pad(w.getUTCDate())}T${pad(w.getUTCHours())}:${pad(w.getUTCMinutes())}`;
}

/** 'YYYY-MM-DDTHH:mm' wall-clock time in `timeZone` → an ISO instant (UTC). */
export function localInputToIso(value: string, timeZone: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (!m) return null;
  const guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], m[6] ? +m[6] : 0);
  const first = tzOffsetMs(new Date(guess), timeZone);
  let t = guess - first;
  const second = tzOffsetMs(new Date(t), timeZone);
  if (second !== first) t = guess - second;
  return new Date(t).toISOString();
}

/** Today's date ('YYYY-MM-DD') in `timeZone`. */
export function todayIn(timeZone: string, now = new Date()): string {
  return isoToLocalInput(now.toISOString(), timeZone).slice(0, 10);
}

export interface Formatter {
  locale: string;
  timeZone: string;
  currencyCode: string;
  /** A calendar date stored as 'YYYY-MM-DD' (no time zone shift). */
  date(v: unknown): string;
  /** An instant, shown in the user's time zone. */
  dateTime(v: unknown): string;
  number(v: unknown): string;
  currency(v: unknown, code?: string): string;
  integer(v: number): string;
}

export function makeFormatter(opts: FormatOptions): Formatter {
  const locale = safeLocale(opts.locale);
  const timeZone = safeTimeZone(opts.timeZone);
  const currencyCode = /^[A-Z]{3}$/.test(opts.currency) ? opts.currency : 'USD';
  const dateFmt = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeZone: 'UTC' });
  const dateTimeFmt = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short', timeZone });
  const numberFmt = new Intl.NumberFormat(locale, { maximumFractionDigits: 6 });
  const intFmt = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
  const currencyFmts = new Map<string, Intl.NumberFormat>();
  const currencyFmt = (code: string) => {
    let f = currencyFmts.get(code);
    if (!f) {
      f = new Intl.NumberFormat(locale, { style: 'currency', currency: code });
      currencyFmts.set(code, f);
    }
    return f;
  };
  const num = (v: unknown): number | undefined => {
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    return Number.isFinite(n) ? n : undefined;
  };
  return {
    locale,
    timeZone,
    currencyCode,
    date(v) {
      if (typeof v !== 'string' || !v) return '';
      const m = DATE_RE.exec(v.slice(0, 10));
      if (!m) return v;
      return dateFmt.format(new Date(Date.UTC(+m[1], +m[2] - 1, +m[3])));
    },
    dateTime(v) {
      if (v === null || v === undefined || v === '') return '';
      const d = new Date(v as string);
      return Number.isNaN(d.getTime()) ? String(v) : dateTimeFmt.format(d);
    },
    number(v) {
      const n = num(v);
      return n === undefined ? '' : numberFmt.format(n);
    },
    currency(v, code) {
      const n = num(v);
      return n === undefined ? '' : currencyFmt(code ?? currencyCode).format(n);
    },
    integer(v) {
      return intFmt.format(v);
    },
  };
}
