import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Loading } from '../../components/ui.tsx';
import { MailView } from '../conversations/MailView.tsx';
import { type InboxItem, inboxKeys, type Label } from './inbox-api.ts';
import { LabelChip } from './Labels.tsx';
import { WatchControl } from './WatchControl.tsx';

/** The read pane: one email of the user's mailbox, its records, labels, and ResponseWatch. */
export function MailPane({ id, labels, onClose }: { id: string; labels: Label[]; onClose: () => void }) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const q = useQuery({
    queryKey: inboxKeys.mail(id),
    queryFn: () => api.get<InboxItem>(`/api/inbox/mail/${seg(id)}`),
  });
  const refresh = () => qc.invalidateQueries({ queryKey: inboxKeys.all });
  const seen = useMutation({
    mutationFn: (value: boolean) => api.post('/api/inbox/seen', { mailIds: [id], seen: value }),
    onSuccess: refresh,
  });
  const label = useMutation({
    mutationFn: (v: { id: string; on: boolean }) =>
      api.post('/api/inbox/labels/apply', { mailIds: [id], [v.on ? 'add' : 'remove']: [v.id] }),
    onSuccess: refresh,
  });
  // Opening an email reads it (Parley's own flag; the mail server's \Seen is not changed).
  const unread = q.data?.unread;
  const markSeen = seen.mutate;
  useEffect(() => {
    if (unread) markSeen(true);
  }, [unread, markSeen]);
  if (q.error) return <ErrorBanner error={q.error} />;
  if (!q.data) return <Loading />;
  const m = q.data;
  const has = new Set(m.labels.map((l) => l.id));
  return (
    <section className="card mail-pane" aria-label={t('inbox.readPane')}>
      <div className="card-header">
        <h2>{m.subject || t('common.untitled')}</h2>
        <div>
          <button type="button" className="btn btn-small" onClick={() => seen.mutate(false)}>
            {t('inbox.markUnread')}
          </button>{' '}
          <button type="button" className="btn btn-small" onClick={onClose}>
            {t('inbox.close')}
          </button>
        </div>
      </div>
      <dl className="mail-meta">
        {m.records.length > 0 && (
          <>
            <dt>{t('inbox.records')}</dt>
            <dd>
              {m.records.map((r) => (
                <Link key={r.id} className="record-link" to={`/m/${seg(r.module)}/${seg(r.id)}`}>
                  {r.moduleLabel}: {r.displayName}
                </Link>
              ))}
            </dd>
          </>
        )}
      </dl>
      <fieldset className="mail-labels" aria-label={t('inbox.labels.title')}>
        {labels.map((l) => (
          <label key={l.id} className="label-toggle">
            <input
              type="checkbox"
              checked={has.has(l.id)}
              onChange={(e) => label.mutate({ id: l.id, on: e.target.checked })}
            />{' '}
            <LabelChip label={l} />
          </label>
        ))}
        {labels.length === 0 && <span className="muted">{t('inbox.labels.noneYet')}</span>}
      </fieldset>
      {m.direction === 'out' && <WatchControl mailId={m.id} />}
      <MailView mailId={m.id} />
      <ErrorBanner error={seen.error ?? label.error} />
    </section>
  );
}
