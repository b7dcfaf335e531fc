import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router-dom';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Loading, PageHeader } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';

// The local outbox (F3.8): with no SMTP relay set up, what would have gone out is kept here,
// byte for byte. The HTML is sanitised by the server (no scripts, no remote images) and still shown
// in a frame with an empty sandbox.

interface OutboxItem {
  messageId: string;
  kind: string;
  subject: string;
  from: { address: string; name: string | null };
  to: { address: string; name: string | null };
  storedAt: string;
  size: number;
}
interface OutboxMessage {
  messageId: string;
  subject: string;
  html: string | null;
  text: string | null;
  headers: { name: string; value: string }[] | Record<string, string>;
  csp?: string;
}

const FRAME_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";

export function OutboxPage() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const q = useQuery({
    queryKey: ['outbox'],
    queryFn: () => api.get<{ items: OutboxItem[]; nextCursor: string | null }>('/api/outbox?limit=200'),
    refetchInterval: 5000,
  });
  return (
    <div>
      <PageHeader title={t('outreach.outbox')} sub={t('outreach.outboxHelp')} />
      <ErrorBanner error={q.error} />
      {!q.data ? (
        <Loading />
      ) : q.data.items.length === 0 ? (
        <p className="muted">{t('outreach.outboxEmpty')}</p>
      ) : (
        <table className="data-table" data-testid="outbox-list">
          <thead>
            <tr>
              <th>{t('outreach.subject')}</th>
              <th>{t('outreach.from')}</th>
              <th>{t('outreach.to')}</th>
              <th>{t('outreach.date')}</th>
            </tr>
          </thead>
          <tbody>
            {q.data.items.map((m) => (
              <tr key={m.messageId}>
                <td>
                  <Link to={`/outbox/${seg(m.messageId)}`}>{m.subject || t('common.untitled')}</Link>
                </td>
                <td>{m.from.address}</td>
                <td>{m.to.address}</td>
                <td>{fmt.dateTime(m.storedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

export function OutboxMessagePage() {
  const { t } = useTranslation();
  const { id = '' } = useParams();
  const q = useQuery({
    queryKey: ['outbox', id],
    queryFn: () => api.get<OutboxMessage>(`/api/outbox/${seg(id)}`),
  });
  if (q.error) return <ErrorBanner error={q.error} />;
  if (!q.data) return <Loading />;
  const m = q.data;
  const headers = Array.isArray(m.headers)
    ? m.headers
    : Object.entries(m.headers ?? {}).map(([name, value]) => ({ name, value }));
  return (
    <div>
      <div className="breadcrumbs">
        <Link to="/outbox">{t('outreach.outbox')}</Link>
      </div>
      <PageHeader
        title={m.subject || t('common.untitled')}
        actions={
          <a className="btn" href={`/api/outbox/${seg(id)}/raw`} target="_blank" rel="noreferrer">
            {t('outreach.rawSource')}
          </a>
        }
      />
      {m.html ? (
        <iframe
          className="tpl-frame"
          title={t('outreach.message')}
          sandbox=""
          referrerPolicy="no-referrer"
          data-testid="outbox-frame"
          srcDoc={`<!doctype html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${m.csp ?? FRAME_CSP}">${m.html}`}
        />
      ) : null}
      <details open={!m.html}>
        <summary>{t('outreach.textPart')}</summary>
        <pre className="message-text">{m.text}</pre>
      </details>
      <details>
        <summary>{t('outreach.headers')}</summary>
        <table className="data-table compact">
          <tbody>
            {headers.map((h, i) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: headers repeat (Received, DKIM-Signature)
              <tr key={i}>
                <th>{h.name}</th>
                <td>
                  <code>{String(h.value)}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </div>
  );
}
