import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError, api, seg } from '../../api.ts';
import { ErrorBanner, FormRow, Loading, PageHeader } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';

// Suppressions (admins): the alerts that need someone (mail refused for policy reasons), the
// org's suppression list (search, filter by reason, add, remove; unsubscribes and complaints ask
// for confirmation), and the bounce webhooks of email providers (the URL is shown once).

type Reason = 'hard_bounce' | 'soft_bounce' | 'complaint' | 'unsubscribe' | 'manual';
const REASONS: Reason[] = ['hard_bounce', 'soft_bounce', 'complaint', 'unsubscribe', 'manual'];
interface Suppression {
  email: string;
  reason: Reason;
  detail: string | null;
  createdAt: string;
  createdBy: string | null;
}
interface Page {
  items: Suppression[];
  next: string | null;
  total: number;
}
interface Alert {
  id: string;
  title: string;
  detail: string;
  count: number;
  firstAt: string;
  lastAt: string;
  dismissedAt: string | null;
}
type Provider = 'ses' | 'sendgrid' | 'postmark' | 'mailgun';
interface Hook {
  provider: Provider;
  configured: boolean;
  settings: Record<string, unknown> | null;
  lastReceivedAt: string | null;
}

const KEY = ['suppressions'] as const;

export function SuppressionsPage() {
  const { t } = useTranslation();
  return (
    <div>
      <PageHeader title={t('suppressions.title')} sub={t('suppressions.intro')} />
      <Alerts />
      <SuppressionList />
      <ProviderHooks />
    </div>
  );
}

function Alerts() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const qc = useQueryClient();
  const q = useQuery({ queryKey: [...KEY, 'alerts'], queryFn: () => api.get<Alert[]>('/api/admin-alerts') });
  const dismiss = useMutation({
    mutationFn: (id: string) => api.post(`/api/admin-alerts/${seg(id)}/dismiss`),
    onSuccess: () => qc.invalidateQueries({ queryKey: [...KEY, 'alerts'] }),
  });
  const open = (q.data ?? []).filter((a) => !a.dismissedAt);
  return (
    <section className="card" aria-labelledby="alerts-h">
      <h2 id="alerts-h">{t('suppressions.alerts')}</h2>
      <ErrorBanner error={q.error ?? dismiss.error} />
      {q.isLoading ? (
        <Loading />
      ) : open.length === 0 ? (
        <p className="muted">{t('suppressions.noAlerts')}</p>
      ) : (
        <ul className="alert-list" style={{ listStyle: 'none', padding: 0 }}>
          {open.map((a) => (
            <li key={a.id} className="alert alert-error" data-testid="admin-alert">
              <strong>{a.title}</strong>
              <p>{a.detail}</p>
              <p className="muted">
                {t('suppressions.alertSeen', {
                  count: a.count,
                  first: fmt.dateTime(a.firstAt),
                  last: fmt.dateTime(a.lastAt),
                })}
              </p>
              <p className="muted">{t('suppressions.alertHelp')}</p>
              <button
                type="button"
                className="btn btn-small"
                disabled={dismiss.isPending}
                onClick={() => dismiss.mutate(a.id)}
              >
                {t('suppressions.dismiss')}
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function SuppressionList() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const qc = useQueryClient();
  const [search, setSearch] = useState('');
  const [reason, setReason] = useState<Reason | ''>('');
  const [email, setEmail] = useState('');
  const [note, setNote] = useState('');
  const list = useInfiniteQuery({
    queryKey: [...KEY, 'list', search, reason],
    initialPageParam: '',
    queryFn: ({ pageParam }) => {
      const p = new URLSearchParams({ limit: '50' });
      if (search.trim()) p.set('q', search.trim());
      if (reason) p.set('reason', reason);
      if (pageParam) p.set('after', pageParam);
      return api.get<Page>(`/api/suppressions?${p}`);
    },
    getNextPageParam: (last) => last.next ?? undefined,
  });
  const add = useMutation({
    mutationFn: () => api.post('/api/suppressions', { email, note: note || undefined }),
    onSuccess: async () => {
      setEmail('');
      setNote('');
      await qc.invalidateQueries({ queryKey: [...KEY, 'list'] });
    },
  });
  const remove = useMutation({
    mutationFn: (s: Suppression) => {
      const personal = s.reason === 'unsubscribe' || s.reason === 'complaint';
      if (
        !window.confirm(
          personal
            ? t('suppressions.confirmPersonal', { email: s.email })
            : t('suppressions.confirmRemove', { email: s.email }),
        )
      )
        return Promise.resolve(undefined);
      return api.del(`/api/suppressions/${seg(s.email)}${personal ? '?force=true' : ''}`);
    },
    onSuccess: () => qc.invalidateQueries({ queryKey: [...KEY, 'list'] }),
  });
  const errs = add.error instanceof ApiError ? add.error.fieldErrors() : {};
  const items = list.data?.pages.flatMap((p) => p.items) ?? [];
  const total = list.data?.pages[0]?.total ?? 0;
  return (
    <section className="card" aria-labelledby="supp-h">
      <h2 id="supp-h">{t('suppressions.list')}</h2>
      <form
        className="form-grid three"
        aria-label={t('suppressions.add')}
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          add.mutate();
        }}
      >
        <FormRow id="supp-email" label={t('suppressions.email')} required error={errs.email}>
          <input id="supp-email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} />
        </FormRow>
        <FormRow id="supp-note" label={t('suppressions.note')}>
          <input
            id="supp-note"
            type="text"
            maxLength={500}
            value={note}
            onChange={(e) => setNote(e.target.value)}
          />
        </FormRow>
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={add.isPending || !email}>
            {t('suppressions.add')}
          </button>
        </div>
      </form>
      <ErrorBanner error={add.error ?? remove.error ?? list.error} />
      <div className="toolbar">
        <label>
          {t('suppressions.search')}{' '}
          <input type="search" value={search} onChange={(e) => setSearch(e.target.value)} />
        </label>{' '}
        <label>
          {t('suppressions.reason')}{' '}
          <select value={reason} onChange={(e) => setReason(e.target.value as Reason | '')}>
            <option value="">{t('suppressions.allReasons')}</option>
            {REASONS.map((r) => (
              <option key={r} value={r}>
                {t(`suppressions.reasons.${r}`)}
              </option>
            ))}
          </select>
        </label>{' '}
        <span className="muted" data-testid="supp-total">
          {t('suppressions.total', { count: total })}
        </span>
      </div>
      {list.isLoading ? (
        <Loading />
      ) : items.length === 0 ? (
        <p className="muted">{t('suppressions.none')}</p>
      ) : (
        <table className="data-table">
          <thead>
            <tr>
              <th>{t('suppressions.email')}</th>
              <th>{t('suppressions.reason')}</th>
              <th>{t('suppressions.detail')}</th>
              <th>{t('suppressions.since')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {items.map((s) => (
              <tr key={s.email}>
                <td>{s.email}</td>
                <td>{t(`suppressions.reasons.${s.reason}`)}</td>
                <td>
                  {s.detail}
                  {s.createdBy && <span className="muted"> — {s.createdBy}</span>}
                </td>
                <td>{fmt.dateTime(s.createdAt)}</td>
                <td>
                  <button
                    type="button"
                    className="btn btn-small"
                    aria-label={t('suppressions.removeOne', { email: s.email })}
                    disabled={remove.isPending}
                    onClick={() => remove.mutate(s)}
                  >
                    {t('suppressions.remove')}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {list.hasNextPage && (
        <button
          type="button"
          className="btn"
          disabled={list.isFetchingNextPage}
          onClick={() => void list.fetchNextPage()}
        >
          {t('suppressions.more')}
        </button>
      )}
    </section>
  );
}

const FIELDS: Record<Provider, { name: string; secret?: boolean; multi?: boolean }[]> = {
  ses: [{ name: 'topicArns', multi: true }],
  sendgrid: [{ name: 'publicKey', multi: true }],
  mailgun: [{ name: 'signingKey', secret: true }],
  postmark: [{ name: 'username' }, { name: 'password', secret: true }],
};

function ProviderHooks() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const q = useQuery({ queryKey: [...KEY, 'hooks'], queryFn: () => api.get<Hook[]>('/api/bounce-webhooks') });
  const [shown, setShown] = useState<{ provider: Provider; url: string } | null>(null);
  return (
    <section className="card" aria-labelledby="hooks-h">
      <h2 id="hooks-h">{t('suppressions.hooks')}</h2>
      <p className="muted">{t('suppressions.hooksIntro')}</p>
      <ErrorBanner error={q.error} />
      {shown && (
        <div className="alert alert-success" role="status" data-testid="hook-url">
          <p>{t('suppressions.urlOnce', { provider: t(`suppressions.providers.${shown.provider}`) })}</p>
          <code className="secret">{shown.url}</code>
          <button type="button" className="btn btn-small" onClick={() => setShown(null)}>
            {t('common.done')}
          </button>
        </div>
      )}
      {(q.data ?? []).map((h) => (
        <ProviderForm
          key={h.provider}
          hook={h}
          onUrl={(url) => setShown({ provider: h.provider, url })}
          lastReceived={h.lastReceivedAt ? fmt.dateTime(h.lastReceivedAt) : null}
        />
      ))}
    </section>
  );
}

function ProviderForm({
  hook,
  onUrl,
  lastReceived,
}: {
  hook: Hook;
  onUrl: (url: string) => void;
  lastReceived: string | null;
}) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const initial = (name: string) => {
    const v = hook.settings?.[name];
    return Array.isArray(v) ? v.join('\n') : typeof v === 'string' ? v : '';
  };
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(FIELDS[hook.provider].map((f) => [f.name, f.secret ? '' : initial(f.name)])),
  );
  const save = useMutation({
    mutationFn: (rotate: boolean) =>
      api.put<{ url: string | null }>(`/api/bounce-webhooks/${hook.provider}`, {
        ...Object.fromEntries(
          FIELDS[hook.provider].map((f) => [
            f.name,
            f.name === 'topicArns' ? values[f.name].split(/\s+/).filter(Boolean) : values[f.name],
          ]),
        ),
        rotate,
      }),
    onSuccess: async (r) => {
      if (r.url) onUrl(r.url);
      await qc.invalidateQueries({ queryKey: [...KEY, 'hooks'] });
    },
  });
  const remove = useMutation({
    mutationFn: () => api.del(`/api/bounce-webhooks/${hook.provider}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: [...KEY, 'hooks'] }),
  });
  const errs = save.error instanceof ApiError ? save.error.fieldErrors() : {};
  const id = (f: string) => `hook-${hook.provider}-${f}`;
  return (
    <form
      className="subcard"
      aria-label={t(`suppressions.providers.${hook.provider}`)}
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate(false);
      }}
    >
      <h3>
        {t(`suppressions.providers.${hook.provider}`)}{' '}
        <span className="muted">
          {hook.configured
            ? lastReceived
              ? t('suppressions.lastReceived', { at: lastReceived })
              : t('suppressions.configured')
            : t('suppressions.notConfigured')}
        </span>
      </h3>
      <ErrorBanner error={save.error ?? remove.error} />
      <div className="form-grid">
        {FIELDS[hook.provider].map((f) => (
          <FormRow
            key={f.name}
            id={id(f.name)}
            label={t(`suppressions.fields.${f.name}`)}
            required
            error={errs[f.name]}
          >
            {f.multi ? (
              <textarea
                id={id(f.name)}
                rows={3}
                value={values[f.name]}
                onChange={(e) => setValues({ ...values, [f.name]: e.target.value })}
              />
            ) : (
              <input
                id={id(f.name)}
                type={f.secret ? 'password' : 'text'}
                autoComplete="off"
                placeholder={f.secret && hook.configured ? t('suppressions.secretKept') : undefined}
                value={values[f.name]}
                onChange={(e) => setValues({ ...values, [f.name]: e.target.value })}
              />
            )}
          </FormRow>
        ))}
      </div>
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={save.isPending}>
          {t('common.save')}
        </button>
        {hook.configured && (
          <>
            <button type="button" className="btn" disabled={save.isPending} onClick={() => save.mutate(true)}>
              {t('suppressions.newUrl')}
            </button>
            <button type="button" className="btn" disabled={remove.isPending} onClick={() => remove.mutate()}>
              {t('common.delete')}
            </button>
          </>
        )}
      </div>
    </form>
  );
}
