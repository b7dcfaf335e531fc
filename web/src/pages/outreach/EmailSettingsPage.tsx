import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Notice, PageHeader } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';

// Admin settings of email (F3.7, F3.8, F6.1): the SMTP relay (or the local outbox when there is
// none), DKIM keys, organization addresses, and today's usage against the daily limit.

interface Relay {
  host: string;
  port: number;
  security: 'none' | 'starttls' | 'tls';
  username: string | null;
  hasPassword: boolean;
  maxConnections: number;
  maxPerSecond: number;
  sendingDomain: string | null;
}
interface DkimKey {
  id: string;
  domain: string;
  selector: string;
  algorithm: string;
  dnsRecord: { name: string; value: string };
}
interface OrgAddress {
  id: string;
  email: string;
  display_name: string | null;
  verified_at: string | null;
  verify_sent_at: string | null;
}

function RelaySection() {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const q = useQuery({
    queryKey: ['smtp-relay'],
    queryFn: () => api.get<Relay | null>('/api/admin/smtp-relay'),
  });
  const [form, setForm] = useState({
    host: '',
    port: '587',
    security: 'starttls',
    username: '',
    password: '',
    maxConnections: '5',
    maxPerSecond: '50',
    sendingDomain: '',
  });
  const [testTo, setTestTo] = useState('');
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    const r = q.data;
    if (r)
      setForm({
        host: r.host,
        port: String(r.port),
        security: r.security,
        username: r.username ?? '',
        password: '',
        maxConnections: String(r.maxConnections),
        maxPerSecond: String(r.maxPerSecond),
        sendingDomain: r.sendingDomain ?? '',
      });
  }, [q.data]);
  const save = useMutation({
    mutationFn: () =>
      api.put('/api/admin/smtp-relay', {
        host: form.host,
        port: Number(form.port),
        security: form.security,
        username: form.username || null,
        ...(form.password ? { password: form.password } : {}),
        maxConnections: Number(form.maxConnections),
        maxPerSecond: Number(form.maxPerSecond),
        sendingDomain: form.sendingDomain || null,
      }),
    onSuccess: async () => {
      setSaved(true);
      await qc.invalidateQueries({ queryKey: ['smtp-relay'] });
    },
  });
  const remove = useMutation({
    mutationFn: () => api.del('/api/admin/smtp-relay'),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['smtp-relay'] }),
  });
  const test = useMutation({
    mutationFn: () =>
      api.post<{ ok: boolean; code: number | null; response: string }>('/api/admin/smtp-relay/test', {
        to: testTo,
      }),
  });
  const field = (k: keyof typeof form, label: string, type = 'text') => (
    <label>
      {label}
      <input
        type={type}
        value={form[k]}
        onChange={(e) => setForm({ ...form, [k]: e.target.value })}
        data-testid={`relay-${k}`}
      />
    </label>
  );
  return (
    <section className="card" aria-label={t('outreach.relay')}>
      <h2>{t('outreach.relay')}</h2>
      <p className="muted">{q.data ? t('outreach.relayOn') : t('outreach.relayOff')}</p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setSaved(false);
          save.mutate();
        }}
      >
        <div className="form-grid">
          {field('host', t('outreach.host'))}
          {field('port', t('outreach.port'), 'number')}
          <label>
            {t('outreach.security')}
            <select value={form.security} onChange={(e) => setForm({ ...form, security: e.target.value })}>
              <option value="starttls">{t('outreach.starttls')}</option>
              <option value="tls">{t('outreach.tls')}</option>
              <option value="none">{t('outreach.noEncryption')}</option>
            </select>
          </label>
          {field('username', t('outreach.username'))}
          <label>
            {t('outreach.password')}
            <input
              type="password"
              autoComplete="new-password"
              value={form.password}
              placeholder={q.data?.hasPassword ? t('outreach.passwordSet') : ''}
              onChange={(e) => setForm({ ...form, password: e.target.value })}
            />
          </label>
          {field('maxConnections', t('outreach.maxConnections'), 'number')}
          {field('maxPerSecond', t('outreach.maxPerSecond'), 'number')}
          {field('sendingDomain', t('outreach.sendingDomain'))}
        </div>
        <ErrorBanner error={save.error ?? remove.error} />
        {saved && <Notice>{t('outreach.saved')}</Notice>}
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={save.isPending}>
            {t('common.save')}
          </button>
          {q.data && (
            <button
              type="button"
              className="btn btn-danger"
              onClick={() => window.confirm(t('outreach.removeRelay')) && remove.mutate()}
            >
              {t('outreach.useOutbox')}
            </button>
          )}
        </div>
      </form>
      {q.data && (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            test.mutate();
          }}
        >
          <label>
            {t('outreach.testTo')}
            <input type="email" value={testTo} onChange={(e) => setTestTo(e.target.value)} required />
          </label>
          <button type="submit" className="btn" disabled={test.isPending}>
            {t('outreach.sendTest')}
          </button>
          <ErrorBanner error={test.error} />
          {test.data && (
            <p className={test.data.ok ? 'alert alert-success' : 'alert alert-error'} role="status">
              {test.data.code ? `${test.data.code} ` : ''}
              {test.data.response}
            </p>
          )}
        </form>
      )}
    </section>
  );
}

function DkimSection() {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ['dkim-keys'], queryFn: () => api.get<DkimKey[]>('/api/admin/dkim-keys') });
  const [domain, setDomain] = useState('');
  const [selector, setSelector] = useState('parley');
  const [algorithm, setAlgorithm] = useState('rsa-sha256');
  const add = useMutation({
    mutationFn: () => api.post('/api/admin/dkim-keys', { domain, selector, algorithm }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['dkim-keys'] }),
  });
  const del = useMutation({
    mutationFn: (id: string) => api.del(`/api/admin/dkim-keys/${seg(id)}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['dkim-keys'] }),
  });
  const keys = Array.isArray(q.data) ? q.data : ((q.data as unknown as { keys?: DkimKey[] })?.keys ?? []);
  return (
    <section className="card" aria-label={t('outreach.dkim')}>
      <h2>{t('outreach.dkim')}</h2>
      <p className="muted">{t('outreach.dkimHelp')}</p>
      <ErrorBanner error={q.error ?? add.error ?? del.error} />
      {keys.length > 0 && (
        <table className="data-table compact">
          <thead>
            <tr>
              <th>{t('outreach.domain')}</th>
              <th>{t('outreach.selector')}</th>
              <th>{t('outreach.dnsRecord')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.id}>
                <td>{k.domain}</td>
                <td>
                  {k.selector} <span className="muted">({k.algorithm})</span>
                </td>
                <td>
                  <code className="dns">
                    {t('outreach.dnsTxt', {
                      name: k.dnsRecord?.name,
                      value: k.dnsRecord?.value,
                      interpolation: { escapeValue: false },
                    })}
                  </code>
                </td>
                <td>
                  <button type="button" className="btn btn-small btn-danger" onClick={() => del.mutate(k.id)}>
                    {t('common.delete')}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          add.mutate();
        }}
      >
        <label>
          {t('outreach.domain')}
          <input value={domain} onChange={(e) => setDomain(e.target.value)} required />
        </label>
        <label>
          {t('outreach.selector')}
          <input value={selector} onChange={(e) => setSelector(e.target.value)} required />
        </label>
        <select
          value={algorithm}
          onChange={(e) => setAlgorithm(e.target.value)}
          aria-label={t('outreach.algorithm')}
        >
          <option value="rsa-sha256">{t('outreach.rsa')}</option>
          <option value="ed25519-sha256">{t('outreach.ed25519')}</option>
        </select>
        <button type="submit" className="btn" disabled={add.isPending}>
          {t('outreach.generateKey')}
        </button>
      </form>
    </section>
  );
}

function OrgAddressesSection() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const qc = useQueryClient();
  const q = useQuery({
    queryKey: ['org-addresses'],
    queryFn: () => api.get<{ addresses: OrgAddress[] }>('/api/org-addresses'),
  });
  const [email, setEmail] = useState('');
  const [displayName, setDisplayName] = useState('');
  const refresh = () => qc.invalidateQueries({ queryKey: ['org-addresses'] });
  const add = useMutation({
    mutationFn: () => api.post('/api/admin/org-addresses', { email, displayName: displayName || null }),
    onSuccess: async () => {
      setEmail('');
      setDisplayName('');
      await refresh();
    },
  });
  const resend = useMutation({
    mutationFn: (id: string) => api.post(`/api/admin/org-addresses/${seg(id)}/resend`),
  });
  const del = useMutation({
    mutationFn: (id: string) => api.del(`/api/admin/org-addresses/${seg(id)}`),
    onSuccess: refresh,
  });
  return (
    <section className="card" aria-label={t('outreach.orgAddresses')}>
      <h2>{t('outreach.orgAddresses')}</h2>
      <p className="muted">{t('outreach.orgAddressesHelp')}</p>
      <ErrorBanner error={q.error ?? add.error ?? resend.error ?? del.error} />
      {resend.isSuccess && <Notice>{t('outreach.linkResent')}</Notice>}
      <table className="data-table compact" data-testid="org-addresses">
        <tbody>
          {(q.data?.addresses ?? []).map((a) => (
            <tr key={a.id}>
              <td>{a.display_name ? `${a.display_name} <${a.email}>` : a.email}</td>
              <td>
                {a.verified_at ? (
                  <span className="badge status-sent">{t('outreach.verified')}</span>
                ) : (
                  <span className="badge status-queued">{t('outreach.pending')}</span>
                )}
              </td>
              <td className="muted">
                {a.verified_at
                  ? fmt.dateTime(a.verified_at)
                  : a.verify_sent_at
                    ? fmt.dateTime(a.verify_sent_at)
                    : ''}
              </td>
              <td>
                {!a.verified_at && (
                  <button type="button" className="btn btn-small" onClick={() => resend.mutate(a.id)}>
                    {t('outreach.resend')}
                  </button>
                )}{' '}
                <button type="button" className="btn btn-small btn-danger" onClick={() => del.mutate(a.id)}>
                  {t('common.delete')}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          add.mutate();
        }}
      >
        <label>
          {t('outreach.address')}
          <input
            type="email"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            required
            data-testid="org-address-email"
          />
        </label>
        <label>
          {t('outreach.displayName')}
          <input value={displayName} onChange={(e) => setDisplayName(e.target.value)} />
        </label>
        <button type="submit" className="btn" disabled={add.isPending}>
          {t('outreach.addAddress')}
        </button>
      </form>
    </section>
  );
}

function UsageSection() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const q = useQuery({
    queryKey: ['email-usage'],
    queryFn: () =>
      api.get<{
        individual: { edition: string; used: number; limit: number; activeUsers: number; resetsAt: string };
        editionLimits: {
          edition: string;
          individual_per_user: number;
          individual_user_cap: number | null;
          individual_flat_over_cap: number | null;
          mass_daily: number;
          followups_per_mass: number;
        }[];
      }>('/api/admin/email-usage'),
  });
  if (q.error) return <ErrorBanner error={q.error} />;
  const u = q.data?.individual;
  return (
    <section className="card" aria-label={t('outreach.usage')}>
      <h2>{t('outreach.usage')}</h2>
      {u && (
        <p data-testid="usage">
          {t('outreach.usageLine', {
            used: fmt.integer(u.used),
            limit: fmt.integer(u.limit),
            users: fmt.integer(u.activeUsers),
            edition: u.edition,
            reset: fmt.dateTime(u.resetsAt),
          })}
        </p>
      )}
      <table className="data-table compact">
        <thead>
          <tr>
            <th>{t('outreach.edition')}</th>
            <th>{t('outreach.perUser')}</th>
            <th>{t('outreach.userCap')}</th>
            <th>{t('outreach.flatAbove')}</th>
            <th>{t('outreach.massDaily')}</th>
            <th>{t('outreach.followups')}</th>
          </tr>
        </thead>
        <tbody>
          {(q.data?.editionLimits ?? []).map((l) => (
            <tr key={l.edition}>
              <td>{l.edition}</td>
              <td>{fmt.integer(l.individual_per_user)}</td>
              <td>{l.individual_user_cap ?? '—'}</td>
              <td>{l.individual_flat_over_cap ?? '—'}</td>
              <td>{fmt.integer(l.mass_daily)}</td>
              <td>{fmt.integer(l.followups_per_mass)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted">{t('outreach.limitsHelp')}</p>
    </section>
  );
}

// Insights on/off (issue 5): on by default; off means new mail carries no pixel or tracked links and
// no open or click is recorded.
function InsightsSection() {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const q = useQuery({
    queryKey: ['insights'],
    queryFn: () => api.get<{ enabled: boolean }>('/api/admin/insights'),
  });
  const set = useMutation({
    mutationFn: (enabled: boolean) => api.put<{ enabled: boolean }>('/api/admin/insights', { enabled }),
    onSuccess: (r) => qc.setQueryData(['insights'], r),
  });
  const title = t('outreach.insights');
  return (
    <section className="card" aria-label={title}>
      <h2>{title}</h2>
      {q.error && <ErrorBanner error={q.error} />}
      {set.error && <ErrorBanner error={set.error} />}
      {q.data && (
        <label>
          <input
            type="checkbox"
            checked={q.data.enabled}
            disabled={set.isPending}
            onChange={(e) => set.mutate(e.target.checked)}
            data-testid="insights-enabled"
          />{' '}
          {t('outreach.insightsOn')}
        </label>
      )}
      <p className="muted">{t('outreach.insightsHelp')}</p>
    </section>
  );
}

export function EmailSettingsPage() {
  const { t } = useTranslation();
  return (
    <div>
      <PageHeader title={t('outreach.settingsTitle')} />
      <RelaySection />
      <DkimSection />
      <OrgAddressesSection />
      <UsageSection />
      <InsightsSection />
    </div>
  );
}
