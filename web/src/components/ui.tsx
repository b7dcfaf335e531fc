import type { ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../api.ts';

/** An error from the API (or anything thrown), as an alert. */
export function ErrorBanner({ error }: { error: unknown }) {
  const { t } = useTranslation();
  if (!error) return null;
  const message =
    error instanceof ApiError
      ? error.code === 'network'
        ? t('errors.network')
        : error.message
      : error instanceof Error
        ? error.message
        : String(error);
  const generic = error instanceof ApiError ? error.details.filter((d) => !d.path) : [];
  return (
    <div className="alert alert-error" role="alert">
      <span>{message}</span>
      {generic.length > 0 && (
        <ul>
          {generic.map((d, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: the details have no identity of their own
            <li key={i}>{d.message}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Notice({ children }: { children: ReactNode }) {
  return (
    <div className="alert alert-success" role="status">
      {children}
    </div>
  );
}

export function Loading() {
  const { t } = useTranslation();
  return (
    <div className="loading" role="status" aria-live="polite">
      {t('common.loading')}
    </div>
  );
}

export function PageHeader({
  title,
  actions,
  sub,
}: {
  title: ReactNode;
  actions?: ReactNode;
  sub?: ReactNode;
}) {
  return (
    <div className="page-header">
      <div>
        <h1>{title}</h1>
        {sub && <div className="page-sub">{sub}</div>}
      </div>
      {actions && <div className="page-actions">{actions}</div>}
    </div>
  );
}

/** One labelled form input with its error below it. */
export function FormRow({
  id,
  label,
  required,
  error,
  wide,
  children,
}: {
  id: string;
  label: ReactNode;
  required?: boolean;
  error?: string;
  wide?: boolean;
  children: ReactNode;
}) {
  const { t } = useTranslation();
  return (
    <div className={`form-row${wide ? ' wide' : ''}${error ? ' has-error' : ''}`}>
      <label
        htmlFor={id}
        id={`${id}-label`}
        className={required ? 'is-required' : undefined}
        title={required ? t('common.required') : undefined}
      >
        {label}
      </label>
      {children}
      {error && (
        <div className="field-error" id={`${id}-error`}>
          {error}
        </div>
      )}
    </div>
  );
}
