import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError, api, seg } from '../../api.ts';
import { ErrorBanner, FormRow, Loading, Notice, PageHeader } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';
import './mailbox.css';

// Settings → Mailbox (F6.3): the user's own connected mailboxes. Connect (with a connection test
// first), see each one's state, last sync and last error in words, sync now, pause/resume, remove.

interface Account {
  id: string;
  protocol: 'imap' | 'pop3';
  host: string;
  port: number;
  security: 'tls' | 'starttls' | 'none';
  username: string;
  auth: 'password' | 'oauth2';
  emailAddress: string;
  backfillDays: number;
  state: 'active' | 'paused';
  error: { code: string; message: string | null; at: string } | null;
  syncing: boolean;
  lastSyncAt: string | null;
  nextSyncAt: string;
}

type TestResult = { ok: true } | { ok: false; code: string; message: string; detail: string | null };

const KEY = ['mailbox-accounts'] as const;
const DEFAULT_PORTS = {
  imap: { tls: 993, starttls: 143, none: 143 },
  pop3: { tls: 995, starttls: 110, none: 110 },
} as const;

export function MailboxPage() {
  const { t } = useTranslation();
  const q = useQuery({
    queryKey: KEY,
    queryFn: () => api.get<{ accounts: Account[] }>('/api/mailbox/accounts'),
    refetchInterval: 5000,
  });
  if (q.error) return <ErrorBanner error={q.error} />;
  if (!q.data) return <Loading />;
  return (
    <div>
      <PageHeader title={t('mailbox.title')} sub={t('mailbox.intro')} />
      <section className="card">
        <h2>{t('mailbox.accounts')}</h2>
        {q.data.accounts.length === 0 ? (
          <p className="muted">{t('mailbox.none')}</p>
        ) : (
          <ul className="mailbox-list" data-testid="mailbox-accounts">
            {q.data.accounts.map((a) => (
              <AccountRow key={a.id} a={a} />
            ))}
          </ul>
        )}
      </section>
      <ConnectForm />
    </div>
  );
}

function TestOutcome({ r }: { r: TestResult }) {
  const { t } = useTranslation();
  if (r.ok)
    return (
      <div className="alert alert-success" role="status" data-testid="mailbox-test-result">
        {t('mailbox.testOk')}
      </div>
    );
  return (
    <div className="alert alert-error" role="alert" data-testid="mailbox-test-result" data-code={r.code}>
      {t(`mailbox.error.${r.code}`)}
      {r.detail && <span className="muted"> ({r.detail})</span>}
    </div>
  );
}

function ConnectForm() {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const [protocol, setProtocol] = useState<'imap' | 'pop3'>('imap');
  const [security, setSecurity] = useState<'tls' | 'starttls' | 'none'>('tls');
  const [host, setHost] = useState('');
  const [port, setPort] = useState<string>('993');
  const [username, setUsername] = useState('');
  const [auth, setAuth] = useState<'password' | 'oauth2'>('password');
  const [secret, setSecret] = useState('');
  const [emailAddress, setEmailAddress] = useState('');
  const [backfillDays, setBackfillDays] = useState('90');
  const [tested, setTested] = useState<TestResult | null>(null);
  const body = () => ({
    protocol,
    host,
    port: Number(port),
    security,
    username,
    auth: protocol === 'imap' ? auth : 'password',
    secret,
    emailAddress: emailAddress || username,
    backfillDays: Number(backfillDays),
  });
  const test = useMutation({
    mutationFn: () => api.post<TestResult>('/api/mailbox/test', body()),
    onSuccess: setTested,
  });
  const create = useMutation({
    mutationFn: () => api.post<Account>('/api/mailbox/accounts', body()),
    onSuccess: async () => {
      setSecret('');
      setTested(null);
      await qc.invalidateQueries({ queryKey: KEY });
    },
  });
  const errors =
    (create.error ?? test.error) instanceof ApiError
      ? ((create.error ?? test.error) as ApiError).fieldErrors()
      : {};
  const choose = (p: 'imap' | 'pop3', s: 'tls' | 'starttls' | 'none') => {
    setProtocol(p);
    setSecurity(s);
    setPort(String(DEFAULT_PORTS[p][s]));
    setTested(null);
  };
  return (
    <section className="card">
      <h2>{t('mailbox.connect')}</h2>
      <form
        className="form-grid"
        aria-label={t('mailbox.connect')}
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <FormRow id="mb-protocol" label={t('mailbox.protocol')} required>
          <select
            id="mb-protocol"
            value={protocol}
            onChange={(e) => choose(e.target.value as 'imap' | 'pop3', security)}
          >
            <option value="imap">{t('mailbox.imap')}</option>
            <option value="pop3">{t('mailbox.pop3')}</option>
          </select>
        </FormRow>
        <FormRow id="mb-security" label={t('mailbox.security')} required>
          <select
            id="mb-security"
            value={security}
            onChange={(e) => choose(protocol, e.target.value as 'tls' | 'starttls' | 'none')}
          >
            <option value="tls">{t('mailbox.securityTls')}</option>
            <option value="starttls">{t('mailbox.securityStarttls')}</option>
            <option value="none">{t('mailbox.securityNone')}</option>
          </select>
        </FormRow>
        <FormRow id="mb-host" label={t('mailbox.host')} required error={errors.host}>
          <input
            id="mb-host"
            required
            maxLength={253}
            placeholder={t('mailbox.hostPlaceholder')}
            value={host}
            onChange={(e) => setHost(e.target.value)}
          />
        </FormRow>
        <FormRow id="mb-port" label={t('mailbox.port')} required error={errors.port}>
          <input
            id="mb-port"
            type="number"
            required
            min={1}
            max={65535}
            value={port}
            onChange={(e) => setPort(e.target.value)}
          />
        </FormRow>
        <FormRow id="mb-username" label={t('mailbox.username')} required error={errors.username}>
          <input
            id="mb-username"
            required
            autoComplete="off"
            maxLength={320}
            value={username}
            onChange={(e) => setUsername(e.target.value)}
          />
        </FormRow>
        {protocol === 'imap' && (
          <FormRow id="mb-auth" label={t('mailbox.auth')} required>
            <select
              id="mb-auth"
              value={auth}
              onChange={(e) => setAuth(e.target.value as 'password' | 'oauth2')}
            >
              <option value="password">{t('mailbox.authPassword')}</option>
              <option value="oauth2">{t('mailbox.authOauth2')}</option>
            </select>
          </FormRow>
        )}
        <FormRow
          id="mb-secret"
          label={auth === 'oauth2' && protocol === 'imap' ? t('mailbox.token') : t('mailbox.password')}
          required
          error={errors.secret}
        >
          <input
            id="mb-secret"
            type="password"
            required
            autoComplete="new-password"
            maxLength={8192}
            value={secret}
            onChange={(e) => setSecret(e.target.value)}
          />
        </FormRow>
        <FormRow id="mb-email" label={t('mailbox.emailAddress')} error={errors.emailAddress}>
          <input
            id="mb-email"
            type="email"
            maxLength={320}
            placeholder={username.includes('@') ? username : ''}
            value={emailAddress}
            onChange={(e) => setEmailAddress(e.target.value)}
          />
        </FormRow>
        <FormRow id="mb-backfill" label={t('mailbox.backfillDays')} error={errors.backfillDays}>
          <input
            id="mb-backfill"
            type="number"
            min={1}
            max={3650}
            value={backfillDays}
            onChange={(e) => setBackfillDays(e.target.value)}
          />
        </FormRow>
        {tested && <TestOutcome r={tested} />}
        <ErrorBanner error={create.error ?? test.error} />
        <div className="form-actions">
          <button type="button" className="btn" disabled={test.isPending} onClick={() => test.mutate()}>
            {test.isPending ? t('mailbox.testing') : t('mailbox.test')}
          </button>
          <button type="submit" className="btn btn-primary" disabled={create.isPending}>
            {t('mailbox.save')}
          </button>
        </div>
      </form>
    </section>
  );
}

function AccountRow({ a }: { a: Account }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const qc = useQueryClient();
  const [tested, setTested] = useState<TestResult | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const act = useMutation({
    mutationFn: (what: 'sync' | 'pause' | 'resume' | 'test' | 'delete') =>
      what === 'delete'
        ? api.del<void>(`/api/mailbox/accounts/${seg(a.id)}`)
        : api.post<unknown>(`/api/mailbox/accounts/${seg(a.id)}/${what}`),
    onSuccess: async (r, what) => {
      if (what === 'test') setTested(r as TestResult);
      if (what === 'sync') setNotice(t('mailbox.syncQueued'));
      await qc.invalidateQueries({ queryKey: KEY });
    },
  });
  const state =
    a.state === 'paused'
      ? t('mailbox.statePaused')
      : a.syncing
        ? t('mailbox.stateSyncing')
        : t('mailbox.stateActive');
  return (
    <li className="mailbox-account" data-testid="mailbox-account" data-state={a.state}>
      <div>
        <strong>{a.emailAddress}</strong>{' '}
        <span className="muted">
          {t('mailbox.server', {
            protocol: t(`mailbox.${a.protocol}`),
            host: a.host,
            port: fmt.integer(a.port),
          })}
        </span>
      </div>
      <div>
        <span
          className={`badge ${a.state === 'paused' ? 'badge-muted' : 'badge-ok'}`}
          data-testid="mailbox-state"
        >
          {state}
        </span>{' '}
        <span className="muted" data-testid="mailbox-last-sync">
          {a.lastSyncAt
            ? t('mailbox.lastSync', { when: fmt.dateTime(a.lastSyncAt) })
            : t('mailbox.neverSynced')}
        </span>
      </div>
      {a.error && (
        <div className="alert alert-error" role="alert" data-testid="mailbox-error" data-code={a.error.code}>
          {t(`mailbox.error.${a.error.code}`)}{' '}
          <span className="muted">{t('mailbox.errorAt', { when: fmt.dateTime(a.error.at) })}</span>
          {a.state === 'paused' && <div>{t('mailbox.pausedHelp')}</div>}
        </div>
      )}
      {tested && <TestOutcome r={tested} />}
      {notice && <Notice>{notice}</Notice>}
      <ErrorBanner error={act.error} />
      <div className="form-actions">
        <button
          type="button"
          className="btn btn-small"
          disabled={act.isPending}
          onClick={() => act.mutate('sync')}
        >
          {t('mailbox.syncNow')}
        </button>
        <button
          type="button"
          className="btn btn-small"
          disabled={act.isPending}
          onClick={() => act.mutate('test')}
        >
          {t('mailbox.test')}
        </button>
        {a.state === 'paused' ? (
          <button
            type="button"
            className="btn btn-small"
            disabled={act.isPending}
            onClick={() => act.mutate('resume')}
          >
            {t('mailbox.resume')}
          </button>
        ) : (
          <button
            type="button"
            className="btn btn-small"
            disabled={act.isPending}
            onClick={() => act.mutate('pause')}
          >
            {t('mailbox.pause')}
          </button>
        )}
        <button
          type="button"
          className="btn btn-small btn-danger"
          disabled={act.isPending}
          onClick={() => {
            if (window.confirm(t('mailbox.confirmDelete', { email: a.emailAddress }))) act.mutate('delete');
          }}
        >
          {t('mailbox.delete')}
        </button>
      </div>
    </li>
  );
}
