import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Loading } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';
import type { EmailStatus } from '../outreach/EmailPanelStatus.tsx';
import { addressText, type MailAddress, MailView } from './MailView.tsx';

interface ConversationEmail {
  kind: 'mail' | 'message';
  id: string;
  direction: 'in' | 'out';
  from: MailAddress | null;
  to: MailAddress[];
  cc: MailAddress[];
  subject: string;
  date: string;
  snippet: string;
  hasAttachments: boolean;
  messageId: string | null;
  status: EmailStatus | null;
}

interface Conversation {
  id: string;
  subject: string;
  lastAt: string;
  emails: ConversationEmail[];
}

/** Parley's own sent message: its body as sent (already sanitised by the sender's service). */
function SentMessage({ id }: { id: string }) {
  const { t } = useTranslation();
  const m = useQuery({
    queryKey: ['message', id],
    queryFn: () => api.get<{ html: string | null; text: string | null }>(`/api/messages/${seg(id)}`),
  });
  if (m.error) return <ErrorBanner error={m.error} />;
  if (!m.data) return <Loading />;
  return <pre className="mail-text">{m.data.text ?? t('conversations.noText')}</pre>;
}

function EmailRow({ email }: { email: ConversationEmail }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const [open, setOpen] = useState(false);
  const who = email.direction === 'in' ? email.from : email.to[0];
  return (
    <li className={`conv-email conv-${email.direction}`} data-testid="conv-email">
      <button type="button" className="conv-email-head" aria-expanded={open} onClick={() => setOpen(!open)}>
        <span className="conv-dir">{t(`conversations.direction.${email.direction}`)}</span>
        <span className="conv-who">{who ? addressText(who) : '—'}</span>
        <span className="conv-snippet muted">{email.snippet}</span>
        {email.hasAttachments && <span className="badge">{t('conversations.hasAttachments')}</span>}
        {email.status && (
          <span className="badge" data-testid="conv-status">
            {t(`insights.state.${email.status.state}`)}
          </span>
        )}
        <time className="muted" dateTime={email.date}>
          {fmt.dateTime(email.date)}
        </time>
      </button>
      {open && (email.kind === 'mail' ? <MailView mailId={email.id} /> : <SentMessage id={email.id} />)}
    </li>
  );
}

function Thread({ conversation, initiallyOpen }: { conversation: Conversation; initiallyOpen: boolean }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  return (
    <details className="conv-thread" open={initiallyOpen} data-testid="conv-thread">
      <summary>
        <strong>{conversation.subject || t('conversations.noSubject')}</strong>{' '}
        <span className="badge">{fmt.integer(conversation.emails.length)}</span>{' '}
        <span className="muted">{fmt.dateTime(conversation.lastAt)}</span>
      </summary>
      <ol className="conv-emails">
        {conversation.emails.map((e) => (
          <EmailRow key={`${e.kind}:${e.id}`} email={e} />
        ))}
      </ol>
    </details>
  );
}

/** The record's conversations (F6.3): synced and dropbox mail with it and what Parley sent it. */
export function ConversationsPanel({ module, id }: { module: string; id: string }) {
  const { t } = useTranslation();
  const q = useQuery({
    queryKey: ['conversations', module, id],
    queryFn: () =>
      api.get<{ conversations: Conversation[] }>(
        `/api/modules/${seg(module)}/records/${seg(id)}/conversations`,
      ),
  });
  return (
    <section className="card" aria-labelledby="conv-title">
      <h2 id="conv-title">{t('conversations.title')}</h2>
      <ErrorBanner error={q.error} />
      {!q.data ? (
        !q.error && <Loading />
      ) : q.data.conversations.length === 0 ? (
        <p className="muted">{t('conversations.none')}</p>
      ) : (
        q.data.conversations.map((c, i) => <Thread key={c.id} conversation={c} initiallyOpen={i === 0} />)
      )}
    </section>
  );
}
