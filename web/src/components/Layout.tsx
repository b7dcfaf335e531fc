import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link, Navigate, NavLink, Outlet, useNavigate } from 'react-router-dom';
import { api, seg, setCsrfToken } from '../api.ts';
import { NotificationBell } from '../pages/inbox/NotificationBell.tsx';
import { useModules } from '../queries.ts';
import { useMe } from '../session.tsx';
import { LiveFeedToasts } from './LiveFeedToasts.tsx';
import { ErrorBanner } from './ui.tsx';

/** The signed-in frame: a top bar with one tab per readable module, and the page below. */
export function Layout() {
  const { t } = useTranslation();
  const me = useMe();
  const modules = useModules();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const logout = useMutation({
    mutationFn: () => api.post('/api/auth/logout'),
    onSettled: () => {
      setCsrfToken(undefined);
      qc.clear();
      navigate('/login', { replace: true });
    },
  });
  return (
    <div className="app">
      <header className="topbar">
        <Link to="/" className="brand">
          {t('app.name')}
        </Link>
        <nav className="module-tabs" aria-label={t('nav.modules')}>
          {(modules.data ?? [])
            .filter((m) => m.access.read)
            .map((m) => (
              <NavLink key={m.apiName} to={`/m/${seg(m.apiName)}`}>
                {m.pluralLabel}
              </NavLink>
            ))}
        </nav>
        <div className="topbar-right">
          <span className="org-name" title={me.org.name}>
            {me.org.name}
          </span>
          <NavLink to="/inbox" className="topbar-link">
            {t('nav.inbox')}
          </NavLink>
          <NavLink to="/templates" className="topbar-link">
            {t('nav.templates')}
          </NavLink>
          <NavLink to="/mass-email" className="topbar-link">
            {t('nav.massEmail')}
          </NavLink>
          <NavLink to="/outbox" className="topbar-link">
            {t('nav.outbox')}
          </NavLink>
          <NavLink to="/reports" className="topbar-link">
            {t('nav.reports')}
          </NavLink>
          <NavLink to="/settings" className="topbar-link">
            {t('nav.settings')}
          </NavLink>
          <NotificationBell />
          <span className="user-name" title={me.user.email}>
            {me.user.name || me.user.email}
          </span>
          <button type="button" className="btn btn-ghost" onClick={() => logout.mutate()}>
            {t('auth.signOut')}
          </button>
        </div>
      </header>
      <main className="content">
        <ErrorBanner error={modules.error} />
        <Outlet />
      </main>
      <LiveFeedToasts />
    </div>
  );
}

/** "/" goes to the first module the user may read. */
export function HomeRedirect() {
  const { t } = useTranslation();
  const modules = useModules();
  const first = modules.data?.find((m) => m.access.read);
  if (first) return <Navigate to={`/m/${seg(first.apiName)}`} replace />;
  if (modules.data) return <p className="muted">{t('nav.noModules')}</p>;
  return null;
}
