import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.ts';
import {
  addressDomain,
  assertHeaderSafe,
  encodeHeaderText,
  formatAddressHeader,
  isValidAddress,
  mailbox,
  needsSmtpUtf8,
  normaliseAddress,
  parseAddress,
  parseAddressList,
} from './address.ts';

function errorOf(fn: () => unknown): AppError {
  try {
    fn();
  } catch (e) {
    if (e instanceof AppError) return e;
    throw e;
  }
  throw new Error('expected an AppError');
}

describe('normaliseAddress', () => {
  it('trims, lowercases the domain and keeps the local part', () => {
    expect(normaliseAddress('  Jane.Doe@Example.COM ')).toBe('Jane.Doe@example.com');
  });
  it('converts IDN domains to punycode', () => {
    expect(normaliseAddress('info@Bücher.de')).toBe('info@xn--bcher-kva.de');
    expect(normaliseAddress('a@xn--bcher-kva.de')).toBe('a@xn--bcher-kva.de');
  });
  it('accepts UTF-8 local parts (RFC 6531) and flags them for SMTPUTF8', () => {
    const a = normaliseAddress('jürgen@example.de');
    expect(a).toBe('jürgen@example.de');
    expect(needsSmtpUtf8(a)).toBe(true);
    expect(needsSmtpUtf8('a@b.de')).toBe(false);
  });
  it('accepts atext specials and quoted local parts', () => {
    expect(normaliseAddress("o'brien+tag@example.ie")).toBe("o'brien+tag@example.ie");
    expect(normaliseAddress('"john doe"@example.com')).toBe('"john doe"@example.com');
    expect(normaliseAddress('"a@b"@example.com')).toBe('"a@b"@example.com');
  });
  it('enforces the 64 / 255 / 254 limits', () => {
    expect(isValidAddress(`${'a'.repeat(64)}@example.com`)).toBe(true);
    expect(errorOf(() => normaliseAddress(`${'a'.repeat(65)}@example.com`)).message).toMatch(/64 bytes/);
    // 64 octets counted in UTF-8: 33 × 'ü' is 66 bytes
    expect(isValidAddress(`${'ü'.repeat(33)}@example.com`)).toBe(false);
    const label = 'a'.repeat(63);
    expect(errorOf(() => normaliseAddress(`x@${'a'.repeat(64)}.com`)).message).toMatch(/label/);
    const long = `x@${[label, label, label, label].join('.')}.com`; // 2 + 259 chars
    expect(errorOf(() => normaliseAddress(long)).message).toMatch(/255/);
    const total = `${'a'.repeat(64)}@${[label, label, label.slice(0, 58)].join('.')}.com`; // 255
    expect(errorOf(() => normaliseAddress(total)).message).toMatch(/254/);
  });
  it.each([
    ['plainaddress', /no @/],
    ['@example.com', /before @ is empty/],
    ['a@', /domain is empty/],
    ['.a@example.com', /dot/],
    ['a..b@example.com', /dot/],
    ['a.@example.com', /dot/],
    ['a b@example.com', /not allowed/],
    ['a(b)@example.com', /not allowed/],
    ['a@localhost', /at least one dot/],
    ['a@exa_mple.com', /not allowed/],
    ['a@-example.com', /not allowed/],
    ['a@example..com', /empty label/],
    ['a@1.2.3.4', /numeric/],
    ['a@[1.2.3.4]', /literals/],
    ['"unterminated@example.com', /quoted/],
  ])('rejects %s', (input, why) => {
    const e = errorOf(() => normaliseAddress(input));
    expect(e.code).toBe('validation_failed');
    expect(e.message).toMatch(why);
  });
});

describe('parseAddress', () => {
  it('parses a name and address', () => {
    expect(parseAddress('Jane Doe <JANE@Example.com>')).toEqual({
      address: 'JANE@example.com',
      name: 'Jane Doe',
    });
    expect(parseAddress('"Doe, Jane" <jane@example.com>')).toEqual({
      address: 'jane@example.com',
      name: 'Doe, Jane',
    });
    expect(parseAddress('jane@example.com')).toEqual({ address: 'jane@example.com' });
    expect(parseAddress('  Jörg   Müller  <jörg@müller.de>')).toEqual({
      address: 'jörg@xn--mller-kva.de',
      name: 'Jörg Müller',
    });
  });
  it('refuses several addresses, groups and things that are not addresses', () => {
    expect(errorOf(() => parseAddress('a@example.com, b@example.com')).message).toMatch(/one address, got 2/);
    expect(errorOf(() => parseAddress('Team: a@example.com;')).message).toMatch(/groups/);
    expect(errorOf(() => parseAddress('just a name')).message).toMatch(/not an email address/);
    expect(errorOf(() => parseAddress('')).message).toMatch(/empty/);
  });
  it('rejects header injection in the input', () => {
    for (const bad of [
      'a@example.com\r\nBcc: victim@example.org',
      'Jane\n <a@example.com>',
      'a@example.com\u0000',
    ]) {
      const e = errorOf(() => parseAddress(bad, 'to'));
      expect(e.code).toBe('validation_failed');
      expect(e.details[0].path).toBe('to');
    }
  });
  it('parses lists', () => {
    expect(parseAddressList('a@example.com, B <b@Example.com>')).toEqual([
      { address: 'a@example.com' },
      { address: 'b@example.com', name: 'B' },
    ]);
  });
});

describe('mailbox', () => {
  it('validates separate fields and drops empty names', () => {
    expect(mailbox('a@Example.com', '  ')).toEqual({ address: 'a@example.com' });
    expect(mailbox('a@example.com', 'Ann')).toEqual({ address: 'a@example.com', name: 'Ann' });
    expect(errorOf(() => mailbox('a@example.com', 'Ann\r\nBcc: x@y.z', 'from')).details[0].path).toBe(
      'from name',
    );
    expect(errorOf(() => mailbox('a@example.com', 'x'.repeat(201))).message).toMatch(/200/);
  });
});

describe('assertHeaderSafe', () => {
  it('passes ordinary text, tabs and Unicode', () => {
    expect(assertHeaderSafe('subject', 'Grüße\tund 😀')).toBe('Grüße\tund 😀');
  });
  it.each(['a\rb', 'a\nb', 'a\u0000b', 'a\u001bb', 'a\u007fb', 'a\u2028b', 'a\u0085b'])('rejects %j', (v) => {
    const e = errorOf(() => assertHeaderSafe('subject', v));
    expect(e.code).toBe('validation_failed');
    expect(e.message).toMatch(/^subject contains a line break or control character/);
  });
});

describe('formatAddressHeader', () => {
  async function roundTrip(header: string) {
    const parsed = await simpleParser(`From: ${header}\r\nSubject: x\r\n\r\nbody\r\n`);
    return parsed.from?.value[0];
  }
  it('leaves plain names bare, quotes specials, encodes non-ASCII', async () => {
    expect(formatAddressHeader({ address: 'a@example.com' })).toBe('a@example.com');
    expect(formatAddressHeader({ address: 'a@example.com', name: 'Ann Lee' })).toBe(
      'Ann Lee <a@example.com>',
    );
    expect(formatAddressHeader({ address: 'a@example.com', name: 'Lee, "Ann"' })).toBe(
      '"Lee, \\"Ann\\"" <a@example.com>',
    );
    const enc = formatAddressHeader({ address: 'a@example.com', name: 'Jörg Müller' });
    expect(enc).toMatch(/^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?= <a@example.com>$/);
    for (const name of ['Ann Lee', 'Lee, "Ann" \\ x', 'Jörg Müller', '😀'.repeat(40)]) {
      expect(await roundTrip(formatAddressHeader({ address: 'a@example.com', name }))).toEqual({
        address: 'a@example.com',
        name,
      });
    }
  });
  it('encodes header text only when needed', () => {
    expect(encodeHeaderText('Hello')).toBe('Hello');
    expect(encodeHeaderText('Grüße')).toMatch(/^=\?UTF-8\?B\?/);
  });
  it('gives the domain', () => {
    expect(addressDomain('a@gmail.com')).toBe('gmail.com');
  });
});
