import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useNavigate, useSearchParams } from 'react-router-dom';
import { api, setCsrfToken } from '../api.ts';
import { ErrorBanner } from '../components/ui.tsx';
import { keys } from '../queries.ts';
import type { Me } from '../types.ts';

/** Only same-site paths are followed after signing in. */
export function safeNext(next: string | null): string {
  return next?.startsWith('/') && !next.startsWith('//') ? next : '/';
}

export function LoginPage() {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const login = useMutation({
    mutationFn: () => api.post<Me>('/api/auth/login', { email, password }),
    onSuccess: (me) => {
      setCsrfToken(me.csrfToken);
      qc.clear();
      qc.setQueryData(keys.me, me);
      navigate(safeNext(params.get('next')), { replace: true });
    },
  });
  return (
    <div className="auth-page">
      <form
        className="auth-card"
        aria-label={t('auth.signIn')}
        onSubmit={(e) => {
          e.preventDefault();
          login.mutate();
        }}
      >
        <div className="brand-large">{t('app.name')}</div>
        <h1>{t('auth.signIn')}</h1>
        <ErrorBanner error={login.error} />
        <label htmlFor="login-email">{t('auth.email')}</label>
        <input
          id="login-email"
          type="email"
          autoComplete="username"
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          required
        />
        <label htmlFor="login-password">{t('auth.password')}</label>
        <input
          id="login-password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          required
        />
        <button type="submit" className="btn btn-primary btn-block" disabled={login.isPending}>
          {login.isPending ? t('auth.signingIn') : t('auth.signIn')}
        </button>
      </form>
    </div>
  );
}

export function AcceptInvitePage() {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [mismatch, setMismatch] = useState(false);
  const accept = useMutation({
    mutationFn: () =>
      api.post<Me>('/api/auth/accept-invite', {
        token,
        password,
        ...(name.trim() ? { name: name.trim() } : {}),
      }),
    onSuccess: (me) => {
      setCsrfToken(me.csrfToken);
      qc.clear();
      qc.setQueryData(keys.me, me);
      navigate('/', { replace: true });
    },
  });
  return (
    <div className="auth-page">
      <form
        className="auth-card"
        aria-label={t('auth.acceptInvite')}
        onSubmit={(e) => {
          e.preventDefault();
          setMismatch(password !== confirm);
          if (password === confirm) accept.mutate();
        }}
      >
        <div className="brand-large">{t('app.name')}</div>
        <h1>{t('auth.acceptInvite')}</h1>
        <p className="muted">{t('auth.acceptInviteHelp')}</p>
        {!token && <div className="alert alert-error">{t('auth.noToken')}</div>}
        <ErrorBanner error={accept.error} />
        <label htmlFor="invite-name">{t('auth.name')}</label>
        <input
          id="invite-name"
          type="text"
          autoComplete="name"
          value={name}
          onChange={(e) => setName(e.target.value)}
        />
        <label htmlFor="invite-password">{t('auth.newPassword')}</label>
        <input
          id="invite-password"
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          required
        />
        <label htmlFor="invite-confirm">{t('auth.confirmPassword')}</label>
        <input
          id="invite-confirm"
          type="password"
          autoComplete="new-password"
          value={confirm}
          onChange={(e) => setConfirm(e.target.value)}
          required
        />
        {mismatch && <div className="field-error">{t('auth.passwordsDiffer')}</div>}
        <button type="submit" className="btn btn-primary btn-block" disabled={!token || accept.isPending}>
          {t('auth.setPassword')}
        </button>
      </form>
    </div>
  );
}
