import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { NavLink, Outlet } from 'react-router-dom';
import { ApiError, api, seg } from '../api.ts';
import { ErrorBanner, FormRow, Loading, Notice, PageHeader } from '../components/ui.tsx';
import { keys, useApiKeys } from '../queries.ts';
import { useFmt, useIsAdmin, useMe } from '../session.tsx';
import type { ApiKey, Me } from '../types.ts';

export const LOCALES = [
  'en-US',
  'en-GB',
  'pt-BR',
  'pt-PT',
  'zh-CN',
  'de-DE',
  'fr-FR',
  'es-ES',
  'it-IT',
  'nl-NL',
  'ja-JP',
];

export function timeZones(current?: string): string[] {
  let zones: string[] = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch {
    zones = [];
  }
  const all = new Set(['UTC', ...zones]);
  if (current) all.add(current);
  return [...all];
}

/** Settings: the user's own pages, then the admin's. */
export function SettingsLayout() {
  const { t } = useTranslation();
  const isAdmin = useIsAdmin();
  return (
    <div className="settings-layout">
      <nav className="side-nav" aria-label={t('settings.nav')}>
        <h2>{t('settings.personal')}</h2>
        <NavLink to="/settings/me">{t('settings.me')}</NavLink>
        <NavLink to="/settings/api-keys">{t('apiKeys.title')}</NavLink>
        <NavLink to="/settings/mailbox">{t('mailbox.nav')}</NavLink>
        {isAdmin && (
          <>
            <h2>{t('settings.admin')}</h2>
            <NavLink to="/settings/users">{t('users.title')}</NavLink>
            <NavLink to="/settings/profiles">{t('profiles.title')}</NavLink>
            <NavLink to="/settings/modules">{t('modules.title')}</NavLink>
            <NavLink to="/settings/org">{t('org.title')}</NavLink>
            <NavLink to="/settings/email">{t('outreach.settingsTitle')}</NavLink>
            <NavLink to="/settings/automations">{t('automations.title')}</NavLink>
            <NavLink to="/settings/suppressions">{t('suppressions.title')}</NavLink>
            <NavLink to="/settings/webhooks">{t('webhooks.title')}</NavLink>
            <NavLink to="/settings/dropbox">{t('dropbox.nav')}</NavLink>
          </>
        )}
      </nav>
      <div className="settings-body">
        <Outlet />
      </div>
    </div>
  );
}

export function MySettingsPage() {
  const { t } = useTranslation();
  const me = useMe();
  const qc = useQueryClient();
  const [name, setName] = useState(me.user.name);
  const [timeZone, setTimeZone] = useState(me.user.timeZone);
  const [locale, setLocale] = useState(me.user.locale);
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [confirm, setConfirm] = useState('');
  const [saved, setSaved] = useState<string | null>(null);
  const zones = useMemo(() => timeZones(me.user.timeZone), [me.user.timeZone]);
  const localeNames = useMemo(() => {
    let names: Intl.DisplayNames | undefined;
    try {
      names = new Intl.DisplayNames([me.user.locale || 'en'], { type: 'language' });
    } catch {
      names = undefined;
    }
    const list = LOCALES.includes(me.user.locale) ? LOCALES : [me.user.locale, ...LOCALES];
    return list.map((l) => ({ value: l, label: names?.of(l) ?? l }));
  }, [me.user.locale]);

  const onSaved = (m: Me) => {
    qc.setQueryData(keys.me, (old: Me | undefined) => ({ ...m, csrfToken: m.csrfToken ?? old?.csrfToken }));
  };
  const profile = useMutation({
    mutationFn: () => api.patch<Me>('/api/me', { name, timeZone, locale }),
    onSuccess: (m) => {
      onSaved(m);
      setSaved(t('settings.saved'));
    },
  });
  const password = useMutation({
    mutationFn: () => {
      if (next !== confirm) throw new Error(t('auth.passwordsDiffer'));
      return api.patch<Me>('/api/me', { currentPassword: current, newPassword: next });
    },
    onSuccess: (m) => {
      onSaved(m);
      setCurrent('');
      setNext('');
      setConfirm('');
      setSaved(t('settings.passwordChanged'));
    },
  });
  const pErr = profile.error instanceof ApiError ? profile.error.fieldErrors() : {};
  const pwErr = password.error instanceof ApiError ? password.error.fieldErrors() : {};

  return (
    <div>
      <PageHeader title={t('settings.me')} sub={me.user.email} />
      {saved && <Notice>{saved}</Notice>}
      <form
        className="card"
        aria-label={t('settings.profile')}
        onSubmit={(e) => {
          e.preventDefault();
          setSaved(null);
          profile.mutate();
        }}
      >
        <h2>{t('settings.profile')}</h2>
        <ErrorBanner error={profile.error} />
        <div className="form-grid">
          <FormRow id="me-name" label={t('settings.name')} error={pErr.name}>
            <input id="me-name" type="text" value={name} onChange={(e) => setName(e.target.value)} />
          </FormRow>
          <FormRow id="me-tz" label={t('settings.timeZone')} error={pErr.timeZone}>
            <select id="me-tz" value={timeZone} onChange={(e) => setTimeZone(e.target.value)}>
              {zones.map((z) => (
                <option key={z} value={z}>
                  {z}
                </option>
              ))}
            </select>
          </FormRow>
          <FormRow id="me-locale" label={t('settings.locale')} error={pErr.locale}>
            <select id="me-locale" value={locale} onChange={(e) => setLocale(e.target.value)}>
              {localeNames.map((l) => (
                <option key={l.value} value={l.value}>
                  {l.label} ({l.value})
                </option>
              ))}
            </select>
          </FormRow>
        </div>
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={profile.isPending}>
            {t('common.save')}
          </button>
        </div>
      </form>

      <form
        className="card"
        aria-label={t('settings.password')}
        onSubmit={(e) => {
          e.preventDefault();
          setSaved(null);
          password.mutate();
        }}
      >
        <h2>{t('settings.password')}</h2>
        <ErrorBanner error={password.error} />
        <div className="form-grid">
          <FormRow id="pw-current" label={t('settings.currentPassword')} error={pwErr.currentPassword}>
            <input
              id="pw-current"
              type="password"
              autoComplete="current-password"
              value={current}
              onChange={(e) => setCurrent(e.target.value)}
            />
          </FormRow>
          <FormRow id="pw-new" label={t('auth.newPassword')} error={pwErr.newPassword}>
            <input
              id="pw-new"
              type="password"
              autoComplete="new-password"
              value={next}
              onChange={(e) => setNext(e.target.value)}
            />
          </FormRow>
          <FormRow id="pw-confirm" label={t('auth.confirmPassword')}>
            <input
              id="pw-confirm"
              type="password"
              autoComplete="new-password"
              value={confirm}
              onChange={(e) => setConfirm(e.target.value)}
            />
          </FormRow>
        </div>
        <div className="form-actions">
          <button
            type="submit"
            className="btn btn-primary"
            disabled={password.isPending || !current || !next}
          >
            {t('settings.changePassword')}
          </button>
        </div>
      </form>
    </div>
  );
}

export function ApiKeysPage() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const qc = useQueryClient();
  const keysQ = useApiKeys();
  const [name, setName] = useState('');
  const [created, setCreated] = useState<ApiKey | null>(null);
  const create = useMutation({
    mutationFn: () => api.post<ApiKey>('/api/api-keys', { name }),
    onSuccess: async (k) => {
      setCreated(k);
      setName('');
      await qc.invalidateQueries({ queryKey: keys.apiKeys });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => api.del(`/api/api-keys/${seg(id)}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.apiKeys }),
  });
  return (
    <div>
      <PageHeader title={t('apiKeys.title')} sub={t('apiKeys.help')} />
      <form
        className="card inline-form"
        aria-label={t('apiKeys.create')}
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <label>
          {t('apiKeys.name')}{' '}
          <input type="text" value={name} onChange={(e) => setName(e.target.value)} required />
        </label>
        <button type="submit" className="btn btn-primary" disabled={create.isPending || !name.trim()}>
          {t('apiKeys.create')}
        </button>
        <ErrorBanner error={create.error} />
      </form>
      {created?.key && (
        <div className="alert alert-success secret" role="status">
          <p>{t('apiKeys.shownOnce', { name: created.name })}</p>
          <label className="secret-value">
            {t('apiKeys.newKey')}
            <input type="text" readOnly value={created.key} onFocus={(e) => e.target.select()} />
          </label>
          <button
            type="button"
            className="btn btn-small"
            onClick={() => navigator.clipboard?.writeText(created.key!)}
          >
            {t('common.copy')}
          </button>
        </div>
      )}
      <ErrorBanner error={keysQ.error ?? revoke.error} />
      {keysQ.isLoading ? (
        <Loading />
      ) : (
        <table className="data-table">
          <thead>
            <tr>
              <th>{t('apiKeys.name')}</th>
              <th>{t('apiKeys.prefix')}</th>
              <th>{t('apiKeys.created')}</th>
              <th>{t('apiKeys.lastUsed')}</th>
              <th>{t('apiKeys.status')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(keysQ.data ?? []).map((k) => (
              <tr key={k.id}>
                <td>{k.name}</td>
                <td>
                  <code>{k.prefix}</code>
                </td>
                <td>{fmt.dateTime(k.createdAt)}</td>
                <td>{k.lastUsedAt ? fmt.dateTime(k.lastUsedAt) : t('apiKeys.never')}</td>
                <td>
                  {k.revokedAt ? (
                    <span className="badge badge-muted">
                      {t('apiKeys.revokedOn', { date: fmt.dateTime(k.revokedAt) })}
                    </span>
                  ) : (
                    <span className="badge badge-ok">{t('apiKeys.active')}</span>
                  )}
                </td>
                <td className="actions">
                  {!k.revokedAt && (
                    <button
                      type="button"
                      className="btn btn-small btn-danger"
                      onClick={() =>
                        window.confirm(t('apiKeys.confirmRevoke', { name: k.name })) && revoke.mutate(k.id)
                      }
                    >
                      {t('apiKeys.revoke')}
                    </button>
                  )}
                </td>
              </tr>
            ))}
            {keysQ.data?.length === 0 && (
              <tr>
                <td colSpan={6} className="empty">
                  {t('apiKeys.none')}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
    </div>
  );
}
