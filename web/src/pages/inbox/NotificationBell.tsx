import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { api } from '../../api.ts';
import { useFmt } from '../../session.tsx';
import { appPath, inboxKeys, type Notification } from './inbox-api.ts';
import './inbox.css';

/** The bell in the top bar: the unread count, and the latest notifications when opened. */
export function NotificationBell() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const qc = useQueryClient();
  const [open, setOpen] = useState(false);
  const q = useQuery({
    queryKey: inboxKeys.notifications,
    queryFn: () => api.get<{ items: Notification[]; unread: number }>('/api/notifications?limit=20'),
    refetchInterval: 60_000,
  });
  const read = useMutation({
    mutationFn: (ids: string[] | 'all') => api.post('/api/notifications/read', { ids }),
    onSuccess: () => qc.invalidateQueries({ queryKey: inboxKeys.notifications }),
  });
  const unread = q.data?.unread ?? 0;
  return (
    <div className="bell">
      <button
        type="button"
        className="btn btn-ghost bell-button"
        aria-label={t('notifications.bell', { count: unread })}
        aria-expanded={open}
        onClick={() => setOpen((o) => !o)}
      >
        <svg
          aria-hidden="true"
          width="18"
          height="18"
          viewBox="0 0 24 24"
          fill="none"
          stroke="currentColor"
          strokeWidth="2"
        >
          <path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9" />
          <path d="M13.7 21a2 2 0 0 1-3.4 0" />
        </svg>
        {unread > 0 && (
          <span className="bell-count" data-testid="bell-count">
            {fmt.integer(unread)}
          </span>
        )}
      </button>
      {open && (
        <div className="bell-menu" role="dialog" aria-label={t('notifications.title')}>
          <div className="bell-head">
            <strong>{t('notifications.title')}</strong>
            {unread > 0 && (
              <button type="button" className="btn btn-small" onClick={() => read.mutate('all')}>
                {t('notifications.markAllRead')}
              </button>
            )}
          </div>
          {(q.data?.items ?? []).length === 0 && <p className="muted">{t('notifications.none')}</p>}
          <ul>
            {(q.data?.items ?? []).map((n) => {
              const to = appPath(n.link);
              const body = (
                <>
                  <strong>{n.title}</strong>
                  <span className="muted">{n.body}</span>
                  <small className="muted">{fmt.dateTime(n.createdAt)}</small>
                </>
              );
              return (
                <li key={n.id} className={n.readAt ? '' : 'unread'}>
                  {to ? (
                    <Link
                      to={to}
                      onClick={() => {
                        if (!n.readAt) read.mutate([n.id]);
                        setOpen(false);
                      }}
                    >
                      {body}
                    </Link>
                  ) : (
                    body
                  )}
                </li>
              );
            })}
          </ul>
        </div>
      )}
    </div>
  );
}
