import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode, useEffect } from 'react';
import { createRoot } from 'react-dom/client';
import { useTranslation } from 'react-i18next';
import { createBrowserRouter, Navigate, Outlet, RouterProvider, useLocation } from 'react-router-dom';
import { ApiError, setCsrfToken, setUnauthenticatedHandler } from './api.ts';
import { HomeRedirect, Layout } from './components/Layout.tsx';
import { ErrorBanner, Loading } from './components/ui.tsx';
import { applyLocale } from './i18n/index.ts';
import { ModuleFieldsPage, ModulesPage } from './pages/admin/ModulesPage.tsx';
import { OrgPage } from './pages/admin/OrgPage.tsx';
import { ProfilesPage } from './pages/admin/ProfilesPage.tsx';
import { UsersPage } from './pages/admin/UsersPage.tsx';
import { AutomationFormPage } from './pages/automations/AutomationFormPage.tsx';
import { AutomationsPage } from './pages/automations/AutomationsPage.tsx';
import { MassEmailStatsPage, MassEmailsPage, NewMassEmailPage } from './pages/bulk/MassEmailPages.tsx';
import { DropboxPage } from './pages/dropbox/DropboxPage.tsx';
import { ImportPage } from './pages/ImportPage.tsx';
import { InboxPage } from './pages/inbox/InboxPage.tsx';
import { ListPage } from './pages/ListPage.tsx';
import { AcceptInvitePage, LoginPage } from './pages/LoginPage.tsx';
import { MailboxPage } from './pages/mailbox/MailboxPage.tsx';
import { EditMassEmailPage } from './pages/massmail/EditMassEmailPage.tsx';
import { EmailSettingsPage } from './pages/outreach/EmailSettingsPage.tsx';
import { OutboxMessagePage, OutboxPage } from './pages/outreach/OutboxPage.tsx';
import { RecordDetailPage } from './pages/RecordDetailPage.tsx';
import { RecordFormPage } from './pages/RecordFormPage.tsx';
import { EmailAnalyticsPage } from './pages/reports/EmailAnalyticsPage.tsx';
import { EmailCallsPage } from './pages/reports/EmailCallsPage.tsx';
import { LeaderboardsPage } from './pages/reports/LeaderboardsPage.tsx';
import { ReportsPage } from './pages/reports/ReportsPage.tsx';
import { SentStatusPage } from './pages/reports/SentStatusPage.tsx';
import {
  TemplatePerformanceDetailPage,
  TemplatePerformancePage,
} from './pages/reports/TemplatePerformancePage.tsx';
import { ApiKeysPage, MySettingsPage, SettingsLayout } from './pages/SettingsPages.tsx';
import { SuppressionsPage } from './pages/suppressions/SuppressionsPage.tsx';
import { TemplateEditorPage } from './pages/templates/TemplateEditorPage.tsx';
import { TemplatesPage } from './pages/templates/TemplatesPage.tsx';
import { WebhooksPage } from './pages/webhooks/WebhooksPage.tsx';
import { useMeQuery } from './queries.ts';
import { SessionProvider, useIsAdmin } from './session.tsx';
import './styles.css';

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      retry: (n, e) => !(e instanceof ApiError && e.status > 0 && e.status < 500) && n < 2,
      refetchOnWindowFocus: false,
    },
  },
});

/** Pages behind the login: loads /api/me, or sends the visitor to the login page. */
function RequireSession() {
  const me = useMeQuery();
  const location = useLocation();
  useEffect(() => {
    if (me.data) {
      setCsrfToken(me.data.csrfToken);
      void applyLocale(me.data.user.locale);
    }
  }, [me.data]);
  if (me.error instanceof ApiError && me.error.code === 'unauthenticated') {
    const next = `${location.pathname}${location.search}`;
    return <Navigate to={`/login${next !== '/' ? `?next=${encodeURIComponent(next)}` : ''}`} replace />;
  }
  if (me.error) return <ErrorBanner error={me.error} />;
  if (!me.data) return <Loading />;
  if (me.data.csrfToken) setCsrfToken(me.data.csrfToken);
  return (
    <SessionProvider me={me.data}>
      <Outlet />
    </SessionProvider>
  );
}

function AdminOnly() {
  const { t } = useTranslation();
  return useIsAdmin() ? <Outlet /> : <div className="alert alert-error">{t('errors.adminOnly')}</div>;
}

function NotFound() {
  const { t } = useTranslation();
  return <p className="muted">{t('errors.notFoundPage')}</p>;
}

const router = createBrowserRouter([
  { path: '/login', element: <LoginPage /> },
  { path: '/accept-invite', element: <AcceptInvitePage /> },
  {
    element: <RequireSession />,
    children: [
      {
        element: <Layout />,
        children: [
          { index: true, element: <HomeRedirect /> },
          { path: 'm/:module', element: <ListPage /> },
          { path: 'm/:module/new', element: <RecordFormPage /> },
          { path: 'm/:module/import', element: <ImportPage /> },
          { path: 'm/:module/:id', element: <RecordDetailPage /> },
          { path: 'm/:module/:id/edit', element: <RecordFormPage /> },
          { path: 'templates', element: <TemplatesPage /> },
          { path: 'outbox', element: <OutboxPage /> },
          { path: 'inbox', element: <InboxPage /> },
          { path: 'mass-email', element: <MassEmailsPage /> },
          { path: 'mass-email/new', element: <NewMassEmailPage /> },
          { path: 'mass-email/:id', element: <MassEmailStatsPage /> },
          { path: 'mass-email/:id/edit', element: <EditMassEmailPage /> },
          { path: 'outbox/:id', element: <OutboxMessagePage /> },
          { path: 'templates/new', element: <TemplateEditorPage /> },
          { path: 'templates/:id', element: <TemplateEditorPage /> },
          { path: 'reports', element: <ReportsPage /> },
          { path: 'reports/email-analytics', element: <EmailAnalyticsPage /> },
          { path: 'reports/email-calls', element: <EmailCallsPage /> },
          { path: 'reports/sent-status', element: <SentStatusPage /> },
          { path: 'reports/leaderboards', element: <LeaderboardsPage /> },
          { path: 'reports/template-performance', element: <TemplatePerformancePage /> },
          { path: 'reports/template-performance/:id', element: <TemplatePerformanceDetailPage /> },
          {
            path: 'settings',
            element: <SettingsLayout />,
            children: [
              { index: true, element: <Navigate to="/settings/me" replace /> },
              { path: 'me', element: <MySettingsPage /> },
              { path: 'api-keys', element: <ApiKeysPage /> },
              { path: 'mailbox', element: <MailboxPage /> },
              {
                element: <AdminOnly />,
                children: [
                  { path: 'users', element: <UsersPage /> },
                  { path: 'profiles', element: <ProfilesPage /> },
                  { path: 'modules', element: <ModulesPage /> },
                  { path: 'modules/:module', element: <ModuleFieldsPage /> },
                  { path: 'org', element: <OrgPage /> },
                  { path: 'email', element: <EmailSettingsPage /> },
                  { path: 'automations', element: <AutomationsPage /> },
                  { path: 'automations/new/:kind', element: <AutomationFormPage /> },
                  { path: 'automations/:kind/:id', element: <AutomationFormPage /> },
                  { path: 'suppressions', element: <SuppressionsPage /> },
                  { path: 'webhooks', element: <WebhooksPage /> },
                  { path: 'dropbox', element: <DropboxPage /> },
                ],
              },
            ],
          },
          { path: '*', element: <NotFound /> },
        ],
      },
    ],
  },
]);

// A session that ends while the app is open (expired, signed out elsewhere) goes back to login.
setUnauthenticatedHandler(() => {
  setCsrfToken(undefined);
  queryClient.clear();
  const here = `${window.location.pathname}${window.location.search}`;
  if (!here.startsWith('/login'))
    void router.navigate(`/login?next=${encodeURIComponent(here)}`, { replace: true });
});

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <RouterProvider router={router} />
    </QueryClientProvider>
  </StrictMode>,
);
