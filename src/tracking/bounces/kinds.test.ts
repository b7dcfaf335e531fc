import { describe, expect, it } from 'vitest';
import { kindOf } from './kinds.ts';

// The boundaries of the word rules that the corpus does not pin down on its own.
describe('kindOf', () => {
  it.each([
    [
      '4.0.0',
      "The domain parked.example doesn't receive email according to the administrator: returned Null MX",
      'hard',
    ],
    ['5.1.10', '556 5.1.10 Domain example.com does not accept mail (nullMX)', 'hard'],
    // a server that takes no mail just now is not a null MX
    ['4.3.2', '421 4.3.2 Service not available, this server does not accept mail at the moment', 'soft'],
    // the sender's own null MX (RFC 7505) is the sender's problem
    ['5.7.27', '550 5.7.27 Host does not accept mail', 'policy'],
    [
      '5.7.1',
      '550 5.7.1 <a@b.example>: Recipient address rejected: User a@b.example temporarily locked',
      'hard',
    ],
    ['5.0.0', '554 Host network not allowed', 'policy'],
    [
      '4.2.1',
      'host mx.b.example refused to talk to me: 421 4.2.1 Service refused, please try later',
      'policy',
    ],
    ['4.2.0', '421 4.2.0 Service refused, please try later (in reply to end of DATA command)', 'soft'],
    ['4.2.1', 'host mx.b.example refused to talk to me: 421 4.2.1 Too many connections', 'soft'],
  ])('%s %s → %s', (status, text, kind) => {
    expect(kindOf(status, text)).toBe(kind);
  });
});
