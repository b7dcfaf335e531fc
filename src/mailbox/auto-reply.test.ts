import { describe, expect, it } from 'vitest';
import { headerReader, isAutoReply } from './auto-reply.ts';

const check = (block: string, from = 'jane@client.example', type: string | null = 'text/plain') =>
  isAutoReply(headerReader(block), from, type);

describe('isAutoReply', () => {
  it('knows auto-replies and delivery reports', () => {
    expect(check('Auto-Submitted: auto-replied\r\n')).toBe(true);
    expect(check('Auto-Submitted: auto-generated (vacation)\n')).toBe(true);
    expect(check('X-Autoreply: yes\r\n')).toBe(true);
    expect(check('X-Autorespond: Out of office\r\n')).toBe(true);
    expect(check('Precedence: auto_reply\r\n')).toBe(true);
    expect(check('X-Auto-Response-Suppress:\r\n DR, OOF, AutoReply\r\n')).toBe(true);
    expect(check('', 'jane@client.example', 'multipart/report; report-type=delivery-status')).toBe(true);
    expect(check('', 'MAILER-DAEMON@mx.client.example')).toBe(true);
    expect(check('', 'postmaster@client.example')).toBe(true);
  });

  it('leaves mail people wrote alone', () => {
    expect(check('Auto-Submitted: no\r\n')).toBe(false);
    expect(check('Precedence: bulk\r\nX-Auto-Response-Suppress: All\r\n')).toBe(false);
    expect(check('Subject: Re: your offer\r\n', 'jane@client.example', 'multipart/alternative')).toBe(false);
    expect(isAutoReply(headerReader(''), null, null)).toBe(false);
  });
});
