import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api } from '../../api.ts';
import { ErrorBanner } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';
import { inboxKeys, type Watch } from './inbox-api.ts';

/**
 * ResponseWatch on one sent email: "remind me if no reply within N hours/days", and what became of
 * the last reminder (waiting, replied, reminded). For mail of the user's mailbox (mailId) or an email
 * Parley sent for them (messageId).
 */
export function WatchControl({ mailId, messageId }: { mailId?: string; messageId?: string }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const qc = useQueryClient();
  const [amount, setAmount] = useState('2');
  const [unit, setUnit] = useState<'hours' | 'days'>('days');
  const target = mailId ? `mailId=${mailId}` : `messageId=${messageId}`;
  const key = inboxKeys.watches(target);
  const q = useQuery({
    queryKey: key,
    queryFn: () =>
      api.get<{ watches: (Watch & { taskId: string | null })[] }>(`/api/inbox/watches?${target}`),
  });
  const refresh = async () => {
    await qc.invalidateQueries({ queryKey: key });
    await qc.invalidateQueries({ queryKey: inboxKeys.all });
  };
  const create = useMutation({
    mutationFn: () =>
      api.post('/api/inbox/watches', {
        ...(mailId ? { mailId } : { messageId }),
        amount: Number(amount),
        unit,
      }),
    onSuccess: refresh,
  });
  const cancel = useMutation({
    mutationFn: (id: string) => api.post(`/api/inbox/watches/${id}/cancel`),
    onSuccess: refresh,
  });
  const last = q.data?.watches[0];
  const waiting = last?.state === 'waiting';
  return (
    <div className="watch-control" data-testid="watch-control">
      {last && (
        <p className={`watch-state watch-${last.state}`} data-testid="watch-state">
          {last.state === 'waiting' && t('inbox.watch.waiting', { due: fmt.dateTime(last.dueAt) })}
          {last.state === 'replied' && t('inbox.watch.replied', { at: fmt.dateTime(last.repliedAt) })}
          {last.state === 'reminded' && t('inbox.watch.reminded', { at: fmt.dateTime(last.remindedAt) })}
          {last.state === 'cancelled' && t('inbox.watch.cancelled')}{' '}
          {waiting && (
            <button
              type="button"
              className="btn btn-small"
              disabled={cancel.isPending}
              onClick={() => cancel.mutate(last.id)}
            >
              {t('inbox.watch.cancel')}
            </button>
          )}
        </p>
      )}
      {!waiting && (
        <form
          className="watch-form"
          onSubmit={(e) => {
            e.preventDefault();
            create.mutate();
          }}
        >
          <label>
            {t('inbox.watch.label')}{' '}
            <input
              type="number"
              min={1}
              max={unit === 'days' ? 90 : 720}
              value={amount}
              aria-label={t('inbox.watch.amount')}
              onChange={(e) => setAmount(e.target.value)}
              required
            />
          </label>{' '}
          <select
            aria-label={t('inbox.watch.unit')}
            value={unit}
            onChange={(e) => setUnit(e.target.value as 'hours' | 'days')}
          >
            <option value="hours">{t('inbox.watch.hours')}</option>
            <option value="days">{t('inbox.watch.days')}</option>
          </select>{' '}
          <button type="submit" className="btn btn-small btn-primary" disabled={create.isPending}>
            {t('inbox.watch.set')}
          </button>
        </form>
      )}
      <ErrorBanner error={q.error ?? create.error ?? cancel.error} />
    </div>
  );
}
