import { describe, expect, it } from 'vitest';
import { pickFolders } from './folders.ts';

describe('pickFolders', () => {
  it('takes the folders the server marks \\Inbox and \\Sent', () => {
    expect(
      pickFolders([
        { path: 'INBOX', specialUse: '\\Inbox' },
        { path: 'Sent' },
        { path: 'Outbox copies', specialUse: '\\Sent', specialUseSource: 'extension' },
      ]),
    ).toEqual({ inbox: 'INBOX', sent: 'Outbox copies' });
  });

  it('falls back to common Sent names, whatever their case', () => {
    expect(pickFolders([{ path: 'INBOX' }, { path: 'Drafts' }, { path: 'sent items' }])).toEqual({
      inbox: 'INBOX',
      sent: 'sent items',
    });
    expect(pickFolders([{ path: 'INBOX' }, { path: 'INBOX.Sent' }]).sent).toBe('INBOX.Sent');
    expect(pickFolders([{ path: 'Inbox' }, { path: '[Gmail]/Sent Mail' }])).toEqual({
      inbox: 'Inbox',
      sent: '[Gmail]/Sent Mail',
    });
  });

  it('skips folders that cannot be selected, and answers no Sent when there is none', () => {
    expect(
      pickFolders([{ path: 'INBOX' }, { path: 'Sent', flags: new Set(['\\Noselect']) }, { path: 'Archive' }]),
    ).toEqual({ inbox: 'INBOX', sent: null });
  });
});
