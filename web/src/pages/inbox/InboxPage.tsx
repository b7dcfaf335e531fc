import { useInfiniteQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useSearchParams } from 'react-router-dom';
import { api } from '../../api.ts';
import { ErrorBanner, Loading, PageHeader } from '../../components/ui.tsx';
import { localInputToIso } from '../../format.ts';
import { useFmt, useMe } from '../../session.tsx';
import { type InboxFilter, type InboxItem, inboxKeys, type SalesCondition } from './inbox-api.ts';
import { LabelChip, LabelsManager, useLabels } from './Labels.tsx';
import { LeadRules } from './LeadRules.tsx';
import { MailPane } from './MailPane.tsx';
import { SalesFilter } from './SalesFilter.tsx';
import './inbox.css';

// SalesInbox (F6.4): the user's own synced mail, the mail from and to CRM records first, filtered by
// email conditions and by a sales condition on the linked record.

const PAGE = 50;
type Tri = '' | 'yes' | 'no';
const tri = (v: Tri) => (v === '' ? undefined : v === 'yes');

interface EmailDraft {
  from: string;
  to: string;
  subject: string;
  attachment: Tri;
  unread: Tri;
  direction: '' | 'in' | 'out';
  after: string;
  before: string;
  labelId: string;
}
const EMPTY: EmailDraft = {
  from: '',
  to: '',
  subject: '',
  attachment: '',
  unread: '',
  direction: '',
  after: '',
  before: '',
  labelId: '',
};

export function InboxPage() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const me = useMe();
  const [params, setParams] = useSearchParams();
  const openId = params.get('mail');
  const [tab, setTab] = useState<'crm' | 'other'>('crm');
  const [panel, setPanel] = useState<'filter' | 'labels' | 'rules' | null>(null);
  const [draft, setDraft] = useState<EmailDraft>(EMPTY);
  const [email, setEmail] = useState<EmailDraft>(EMPTY);
  const [sales, setSales] = useState<SalesCondition | null>(null);
  const labels = useLabels();
  const tz = me.user.timeZone;

  const filter: InboxFilter = {
    tab,
    ...(email.from ? { from: email.from } : {}),
    ...(email.to ? { to: email.to } : {}),
    ...(email.subject ? { subject: email.subject } : {}),
    ...(tri(email.attachment) !== undefined ? { hasAttachment: tri(email.attachment) } : {}),
    ...(tri(email.unread) !== undefined ? { unread: tri(email.unread) } : {}),
    ...(email.direction ? { direction: email.direction } : {}),
    ...(email.after ? { after: localInputToIso(`${email.after}T00:00`, tz) ?? undefined } : {}),
    ...(email.before ? { before: localInputToIso(`${email.before}T00:00`, tz) ?? undefined } : {}),
    ...(email.labelId ? { labelIds: [email.labelId] } : {}),
    ...(sales ? { sales: [sales] } : {}),
  };
  const q = useInfiniteQuery({
    queryKey: inboxKeys.list(filter),
    queryFn: ({ pageParam }) =>
      api.post<{ items: InboxItem[]; nextCursor: string | null }>('/api/inbox/query', {
        ...filter,
        limit: PAGE,
        cursor: pageParam,
      }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.nextCursor,
  });
  const items = q.data?.pages.flatMap((p) => p.items) ?? [];
  const open = (id: string | null) => {
    const next = new URLSearchParams(params);
    if (id) next.set('mail', id);
    else next.delete('mail');
    setParams(next);
  };
  const set = (patch: Partial<EmailDraft>) => setDraft((d) => ({ ...d, ...patch }));
  const togglePanel = (p: 'filter' | 'labels' | 'rules') => setPanel(panel === p ? null : p);

  return (
    <div className="inbox-page">
      <PageHeader
        title={t('inbox.title')}
        sub={t('inbox.intro')}
        actions={
          <>
            <button
              type="button"
              className="btn"
              aria-pressed={panel === 'filter'}
              onClick={() => togglePanel('filter')}
            >
              {t('inbox.filter')}
            </button>
            <button
              type="button"
              className="btn"
              aria-pressed={panel === 'labels'}
              onClick={() => togglePanel('labels')}
            >
              {t('inbox.labels.manage')}
            </button>
            <button
              type="button"
              className="btn"
              aria-pressed={panel === 'rules'}
              onClick={() => togglePanel('rules')}
            >
              {t('inbox.rules.title')}
            </button>
          </>
        }
      />
      {panel === 'labels' && <LabelsManager />}
      {panel === 'rules' && <LeadRules />}
      {panel === 'filter' && (
        <div className="panel inbox-filter">
          <form
            className="email-filter"
            aria-label={t('inbox.emailConditions')}
            onSubmit={(e) => {
              e.preventDefault();
              setEmail(draft);
            }}
          >
            <fieldset>
              <legend>{t('inbox.emailConditions')}</legend>
              <label>
                {t('inbox.from')} <input value={draft.from} onChange={(e) => set({ from: e.target.value })} />
              </label>
              <label>
                {t('inbox.to')} <input value={draft.to} onChange={(e) => set({ to: e.target.value })} />
              </label>
              <label>
                {t('inbox.subjectContains')}{' '}
                <input value={draft.subject} onChange={(e) => set({ subject: e.target.value })} />
              </label>
              <label htmlFor="inbox-attachment">{t('inbox.hasAttachment')}</label>
              <TriSelect
                id="inbox-attachment"
                value={draft.attachment}
                onChange={(attachment) => set({ attachment })}
              />
              <label htmlFor="inbox-unread">{t('inbox.unread')}</label>
              <TriSelect id="inbox-unread" value={draft.unread} onChange={(unread) => set({ unread })} />
              <label>
                {t('inbox.direction')}{' '}
                <select
                  value={draft.direction}
                  onChange={(e) => set({ direction: e.target.value as EmailDraft['direction'] })}
                >
                  <option value="">{t('inbox.any')}</option>
                  <option value="in">{t('inbox.received')}</option>
                  <option value="out">{t('inbox.sent')}</option>
                </select>
              </label>
              <label>
                {t('inbox.after')}{' '}
                <input type="date" value={draft.after} onChange={(e) => set({ after: e.target.value })} />
              </label>
              <label>
                {t('inbox.before')}{' '}
                <input type="date" value={draft.before} onChange={(e) => set({ before: e.target.value })} />
              </label>
              <label>
                {t('inbox.label')}{' '}
                <select value={draft.labelId} onChange={(e) => set({ labelId: e.target.value })}>
                  <option value="">{t('inbox.any')}</option>
                  {(labels.data?.labels ?? []).map((l) => (
                    <option key={l.id} value={l.id}>
                      {l.name}
                    </option>
                  ))}
                </select>
              </label>
            </fieldset>
            <div className="form-actions">
              <button type="submit" className="btn btn-primary">
                {t('inbox.applyEmail')}
              </button>
              <button
                type="button"
                className="btn"
                onClick={() => {
                  setDraft(EMPTY);
                  setEmail(EMPTY);
                }}
              >
                {t('inbox.clearEmail')}
              </button>
            </div>
          </form>
          <SalesFilter value={sales} onChange={setSales} />
        </div>
      )}
      <div className="inbox-tabs" role="tablist" aria-label={t('inbox.tabs')}>
        <button type="button" role="tab" aria-selected={tab === 'crm'} onClick={() => setTab('crm')}>
          {t('inbox.crmMail')}
        </button>
        <button type="button" role="tab" aria-selected={tab === 'other'} onClick={() => setTab('other')}>
          {t('inbox.otherMail')}
        </button>
      </div>
      <ErrorBanner error={q.error} />
      <div className={`inbox-body${openId ? ' with-pane' : ''}`}>
        <div className="inbox-list">
          {q.isPending ? (
            <Loading />
          ) : items.length === 0 ? (
            <p className="muted">{t('inbox.empty')}</p>
          ) : (
            <table className="data-table compact" data-testid="inbox-list">
              <tbody>
                {items.map((m) => (
                  <tr
                    key={m.id}
                    className={`${m.unread ? 'unread' : ''}${m.id === openId ? ' selected' : ''}`}
                    data-testid="inbox-row"
                  >
                    <td className="inbox-who">
                      {m.direction === 'out'
                        ? t('inbox.toWho', { who: m.to.map((a) => a.name || a.address).join(', ') })
                        : m.from?.name || m.from?.address}
                    </td>
                    <td>
                      <button type="button" className="link-button" onClick={() => open(m.id)}>
                        {m.subject || t('common.untitled')}
                      </button>{' '}
                      {m.labels.map((l) => (
                        <LabelChip key={l.id} label={l} />
                      ))}
                      <div className="muted inbox-snippet">{m.snippet}</div>
                    </td>
                    <td className="inbox-records">
                      {m.records.map((r) => `${r.moduleLabel}: ${r.displayName}`).join(', ')}
                    </td>
                    <td>
                      {m.watch && (
                        <span className={`badge watch-${m.watch.state}`}>
                          {t(`inbox.watch.badge_${m.watch.state}`)}
                        </span>
                      )}
                    </td>
                    <td className="inbox-date">{fmt.dateTime(m.date)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {q.hasNextPage && (
            <button
              type="button"
              className="btn"
              disabled={q.isFetchingNextPage}
              onClick={() => q.fetchNextPage()}
            >
              {t('inbox.more')}
            </button>
          )}
        </div>
        {openId && (
          <MailPane key={openId} id={openId} labels={labels.data?.labels ?? []} onClose={() => open(null)} />
        )}
      </div>
    </div>
  );
}

function TriSelect({ id, value, onChange }: { id: string; value: Tri; onChange: (v: Tri) => void }) {
  const { t } = useTranslation();
  return (
    <select id={id} value={value} onChange={(e) => onChange(e.target.value as Tri)}>
      <option value="">{t('inbox.any')}</option>
      <option value="yes">{t('common.yes')}</option>
      <option value="no">{t('common.no')}</option>
    </select>
  );
}
