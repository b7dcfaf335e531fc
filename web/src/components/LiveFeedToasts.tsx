import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import type { FeedEvent } from '../../../src/tracking/live-feed.ts';
import { seg } from '../api.ts';
import '../pages/outreach/email-status.css';

// Sales signals (F4.11): the live feed (GET /api/feed, server-sent events) shown as toasts in the
// signed-in shell: someone opened, clicked, bounced or wrote in on a record you own. The record's
// Emails list is refreshed at the same time. EventSource reconnects by itself and sends
// Last-Event-ID, so nothing is missed across a dropped connection.

const KINDS = ['opened', 'clicked', 'bounced', 'replied', 'received'] as const;
const SHOWN_MS = 12_000;
const MAX_SHOWN = 4;

export function LiveFeedToasts() {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const [toasts, setToasts] = useState<FeedEvent[]>([]);
  useEffect(() => {
    if (typeof EventSource === 'undefined') return;
    const source = new EventSource('/api/feed');
    const timers = new Set<ReturnType<typeof setTimeout>>();
    const onEvent = (m: MessageEvent<string>) => {
      const e = JSON.parse(m.data) as FeedEvent;
      setToasts((ts) => [...ts.filter((x) => x.id !== e.id), e].slice(-MAX_SHOWN));
      void qc.invalidateQueries({ queryKey: ['record-emails', e.module, e.recordId] });
      const timer = setTimeout(() => {
        timers.delete(timer);
        setToasts((ts) => ts.filter((x) => x.id !== e.id));
      }, SHOWN_MS);
      timers.add(timer);
    };
    for (const k of KINDS) source.addEventListener(k, onEvent);
    return () => {
      source.close();
      for (const timer of timers) clearTimeout(timer);
    };
  }, [qc]);
  if (toasts.length === 0) return null;
  return (
    <div className="feed-toasts" role="status" aria-live="polite" data-testid="feed-toasts">
      {toasts.map((e) => (
        <div key={e.id} className={`feed-toast ${e.kind}`} data-testid="feed-toast" data-kind={e.kind}>
          <Link to={`/m/${seg(e.module)}/${seg(e.recordId)}`}>
            {t(`insights.feed.${e.kind}`, {
              name: e.recordName,
              subject: e.subject ?? t('common.untitled'),
            })}
          </Link>
          <button
            type="button"
            className="btn btn-icon"
            aria-label={t('insights.feed.dismiss')}
            onClick={() => setToasts((ts) => ts.filter((x) => x.id !== e.id))}
          >
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
