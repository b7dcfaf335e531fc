// Email addresses and user-supplied header values: parsed once, validated, normalised. Only what
// leaves this module (the normalised address, a header-safe value) may reach a header or SMTP.
import addressparser from 'nodemailer/lib/addressparser';
import { encodeWords } from 'nodemailer/lib/mime-funcs';
import { toASCII } from 'nodemailer/lib/punycode';
import { invalid } from '../errors.ts';

export interface Mailbox {
  /** Normalised: trimmed, domain lowercased and in punycode (ASCII); the local part as written. */
  address: string;
  /** Display name, header-safe, whitespace collapsed; absent when there is none. */
  name?: string;
}

// RFC 5321 §4.5.3.1: 64 octets of local part, 255 of domain; RFC 3696 errata / 5321 path limit:
// 254 octets for the whole address as it appears in MAIL FROM / RCPT TO.
const MAX_LOCAL = 64;
const MAX_DOMAIN = 255;
const MAX_ADDRESS = 254;
const MAX_LABEL = 63;
/** Display names are for humans; anything longer is a mistake or an attack. */
const MAX_NAME = 200;
/** An address header line may not pass 998 octets (RFC 5322 §2.1.1); inputs are bounded below it. */
const MAX_INPUT = 512;

// CR, LF and NUL end or corrupt a header (header injection); the other C0 controls (except TAB),
// DEL, and Unicode's NEL, line and paragraph separators are treated as line breaks by some software.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE_HEADER = /[\u0000-\u0008\u000a-\u001f\u007f\u0085\u2028\u2029]/;

/**
 * Throws validation_failed when a value meant for a header (display name, subject, reply-to, …)
 * carries a line break or another control character. Returns the value unchanged otherwise.
 */
export function assertHeaderSafe(field: string, value: string): string {
  if (typeof value !== 'string')
    throw invalid(`${field} must be text`, [{ path: field, message: 'must be text' }]);
  const m = UNSAFE_HEADER.exec(value);
  if (m) {
    const code = `U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
    throw invalid(
      `${field} contains a line break or control character (${code}), which is not allowed in an email header`,
      [{ path: field, message: `control character ${code} not allowed` }],
    );
  }
  return value;
}

// RFC 5322 atext, widened by RFC 6531 to every non-ASCII character (UTF8-non-ascii).
const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+$/u;
// Inside a quoted local part: printable ASCII except " and \, space, or a quoted-pair; plus UTF-8.
const QUOTED_LOCAL = /^"(?:[\u0020\u0021\u0023-\u005b\u005d-\u007e\u0080-\u{10FFFF}]|\\[\u0020-\u007e])*"$/u;
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

const utf8Length = (s: string) => Buffer.byteLength(s, 'utf8');

function fail(field: string, why: string): never {
  throw invalid(`${field}: ${why}`, [{ path: field, message: why }]);
}

function validLocalPart(local: string, field: string): string {
  if (!local) fail(field, 'the part before @ is empty');
  if (utf8Length(local) > MAX_LOCAL) fail(field, `the part before @ is longer than ${MAX_LOCAL} bytes`);
  if (local.startsWith('"')) {
    if (!QUOTED_LOCAL.test(local)) fail(field, 'the quoted part before @ is malformed');
    return local;
  }
  for (const atom of local.split('.')) {
    if (!atom) fail(field, 'the part before @ has a leading, trailing or double dot');
    if (!ATEXT.test(atom)) fail(field, 'the part before @ contains a character that is not allowed');
  }
  // Unicode local parts (RFC 6531) are compared and sent in NFC, so one address has one form.
  return local.normalize('NFC');
}

function validDomain(domain: string, field: string): string {
  if (!domain) fail(field, 'the domain is empty');
  if (domain.startsWith('[')) fail(field, 'IP address literals are not supported as a domain');
  let ascii: string;
  try {
    // IDN (RFC 5891): lowercase the Unicode form, then punycode each label; SMTP only sees ASCII.
    ascii = toASCII(domain.normalize('NFC').toLowerCase());
  } catch {
    fail(field, 'the domain is not a valid internationalised domain name');
  }
  if (ascii.endsWith('.')) ascii = ascii.slice(0, -1); // a fully-qualified trailing dot
  if (ascii.length > MAX_DOMAIN) fail(field, `the domain is longer than ${MAX_DOMAIN} characters`);
  const labels = ascii.split('.');
  if (labels.length < 2) fail(field, 'the domain needs at least one dot (e.g. example.com)');
  for (const label of labels) {
    if (!label) fail(field, 'the domain has an empty label (two dots in a row)');
    if (label.length > MAX_LABEL) fail(field, `a domain label is longer than ${MAX_LABEL} characters`);
    if (!LDH_LABEL.test(label)) fail(field, 'the domain contains a character that is not allowed');
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1])) fail(field, 'the domain ends with a numeric label');
  return ascii;
}

/**
 * Validates a bare address (`local@domain`) and returns its normalised form: trimmed, domain in
 * lowercase punycode. The local part keeps its case (RFC 5321 §2.4: it is the receiver's to fold).
 */
export function normaliseAddress(input: string, field = 'address'): string {
  if (typeof input !== 'string') fail(field, 'must be text');
  assertHeaderSafe(field, input);
  const s = input.trim();
  if (!s) fail(field, 'is empty');
  const at = s.lastIndexOf('@');
  if (at < 0) fail(field, `"${s.slice(0, 80)}" is not an email address (no @)`);
  const local = validLocalPart(s.slice(0, at), field);
  const domain = validDomain(s.slice(at + 1), field);
  const address = `${local}@${domain}`;
  if (utf8Length(address) > MAX_ADDRESS) fail(field, `the address is longer than ${MAX_ADDRESS} bytes`);
  return address;
}

/** Validates a host name (IDN allowed) and returns it in lowercase punycode, e.g. a sending domain. */
export function normaliseDomain(input: string, field = 'domain'): string {
  if (typeof input !== 'string') fail(field, 'must be text');
  assertHeaderSafe(field, input);
  return validDomain(input.trim(), field);
}

/** True when `input` is a valid address (see normaliseAddress). */
export function isValidAddress(input: string): boolean {
  try {
    normaliseAddress(input);
    return true;
  } catch {
    return false;
  }
}

function cleanName(name: string, field: string): string | undefined {
  const n = name.replace(/[\s]+/g, ' ').trim();
  if (!n) return undefined;
  if ([...n].length > MAX_NAME) fail(field, `the display name is longer than ${MAX_NAME} characters`);
  return n;
}

/**
 * Parses one mailbox as a user typed it: `jane@example.com`, `Jane Doe <jane@example.com>`,
 * `"Doe, Jane" <jane@example.com>`. Exactly one address; groups and lists are refused.
 */
export function parseAddress(input: string, field = 'address'): Mailbox {
  const list = parseAddressList(input, field);
  if (list.length !== 1) fail(field, `expected one address, got ${list.length}`);
  return list[0];
}

/** Parses a comma-separated list of mailboxes (no groups). */
export function parseAddressList(input: string, field = 'addresses'): Mailbox[] {
  if (typeof input !== 'string') fail(field, 'must be text');
  assertHeaderSafe(field, input);
  if (input.length > MAX_INPUT * 20) fail(field, 'is too long');
  const parsed = addressparser(input.trim());
  if (parsed.length === 0) fail(field, 'is empty');
  return parsed.map((entry) => {
    if (entry.group) fail(field, 'address groups ("Name: a@b;") are not supported');
    if (!entry.address) fail(field, `"${input.trim().slice(0, 80)}" is not an email address`);
    return mailbox(entry.address, entry.name, field);
  });
}

/** Builds a Mailbox from separate address and name inputs (e.g. form fields), validating both. */
export function mailbox(address: string, name: string | null | undefined, field = 'address'): Mailbox {
  const normal = normaliseAddress(address, field);
  if (name == null) return { address: normal };
  assertHeaderSafe(`${field} name`, name);
  const n = cleanName(name, field);
  return n ? { address: normal, name: n } : { address: normal };
}

/** The domain of a normalised address (ASCII, lowercase), e.g. for per-domain throttles. */
export function addressDomain(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

/** True when the address needs the SMTPUTF8 extension (a non-ASCII local part, RFC 6531). */
export function needsSmtpUtf8(address: string): boolean {
  return !isAscii(address);
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: this is the ASCII test itself
const ASCII = /^[\u0000-\u007f]*$/;
export const isAscii = (s: string) => ASCII.test(s);

// A display name made only of atoms and spaces can go bare; anything else is quoted (RFC 5322 phrase).
const PHRASE = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+$/;

/**
 * Encodes a header value that may hold non-ASCII text as RFC 2047 encoded words (B encoding,
 * UTF-8); ASCII values are returned as they are. Validate with assertHeaderSafe first.
 */
export function encodeHeaderText(value: string): string {
  return isAscii(value) ? value : encodeWords(value, 'B', 52, true);
}

/** `Name <address>` for a From/To/Reply-To header: quoted or RFC 2047-encoded as needed. */
export function formatAddressHeader(m: Mailbox): string {
  if (!m.name) return m.address;
  const name = m.name;
  let phrase: string;
  if (!isAscii(name)) phrase = encodeWords(name, 'B', 52, true);
  else if (PHRASE.test(name)) phrase = name;
  else phrase = `"${name.replace(/[\\"]/g, '\\$&')}"`;
  return `${phrase} <${m.address}>`;
}
