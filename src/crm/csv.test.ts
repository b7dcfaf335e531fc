import { describe, expect, it } from 'vitest';
import { csvSafe, suggestMapping } from './csv.ts';

describe('csvSafe', () => {
  it('neutralises every formula trigger', () => {
    for (const c of ['=', '+', '-', '@', '\t', '\r'])
      expect(csvSafe(`${c}cmd|' /C calc'!A0`)).toBe(`'${c}cmd|' /C calc'!A0`);
  });
  it('leaves ordinary text alone', () => {
    expect(csvSafe('Acme = best')).toBe('Acme = best');
    expect(csvSafe('')).toBe('');
  });
});

describe('suggestMapping', () => {
  it('matches labels and api names loosely, once each', () => {
    const m = suggestMapping(
      ['First Name', 'e-mail', 'EMAIL', 'Whatever'],
      [
        { apiName: 'first_name', label: 'First Name' },
        { apiName: 'email', label: 'Email' },
      ],
    );
    expect(m).toEqual({ 'First Name': 'first_name', 'e-mail': 'email', EMAIL: null, Whatever: null });
  });
});
