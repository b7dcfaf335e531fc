import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Loading } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';
import './conversations.css';

export interface MailAddress {
  address: string;
  name?: string | null;
}

export interface MailDetail {
  id: string;
  subject: string;
  from: MailAddress | null;
  to: MailAddress[];
  cc: MailAddress[];
  date: string;
  text: string | null;
  /** A whole document (with its own Content-Security-Policy) for the sandboxed frame. */
  html: string | null;
  blockedImages: number;
  images: boolean;
  attachments: {
    id: string;
    filename: string;
    contentType: string;
    size: number | null;
    inline: boolean;
    url: string;
  }[];
}

export const addressText = (a: MailAddress) => (a.name ? `${a.name} <${a.address}>` : a.address);

/**
 * One received or synced email. Its HTML (sanitised by the server) is shown in a sandboxed iframe:
 * no scripts, no forms, no same-origin access; only its links may open, in a new tab outside the
 * sandbox (the sanitiser gives every link target=_blank and rel=noopener noreferrer). Remote images
 * stay out until the user asks; then the browser loads them, never the server.
 */
export function MailView({ mailId }: { mailId: string }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const [images, setImages] = useState(false);
  const mail = useQuery({
    queryKey: ['mail', mailId, images],
    queryFn: () => api.get<MailDetail>(`/api/mail/${seg(mailId)}${images ? '?images=1' : ''}`),
  });
  if (mail.error) return <ErrorBanner error={mail.error} />;
  if (!mail.data) return <Loading />;
  const m = mail.data;
  const files = m.attachments.filter((a) => !a.inline);
  return (
    <article className="mail-view" data-testid="mail-view">
      <dl className="mail-head">
        <dt>{t('conversations.from')}</dt>
        <dd>{m.from ? addressText(m.from) : '—'}</dd>
        <dt>{t('conversations.to')}</dt>
        <dd>{m.to.map(addressText).join(', ') || '—'}</dd>
        {m.cc.length > 0 && (
          <>
            <dt>{t('conversations.cc')}</dt>
            <dd>{m.cc.map(addressText).join(', ')}</dd>
          </>
        )}
        <dt>{t('conversations.date')}</dt>
        <dd>{fmt.dateTime(m.date)}</dd>
      </dl>
      {m.blockedImages > 0 && !m.images && (
        <p className="mail-images">
          <span className="muted">{t('conversations.imagesBlocked', { count: m.blockedImages })}</span>{' '}
          <button type="button" className="btn btn-small" onClick={() => setImages(true)}>
            {t('conversations.showImages')}
          </button>
        </p>
      )}
      {m.html ? (
        <iframe
          className="mail-frame"
          title={t('conversations.body', { subject: m.subject })}
          sandbox="allow-popups allow-popups-to-escape-sandbox"
          referrerPolicy="no-referrer"
          srcDoc={m.html}
        />
      ) : (
        <pre className="mail-text">{m.text ?? ''}</pre>
      )}
      {files.length > 0 && (
        <ul className="mail-attachments" aria-label={t('conversations.attachments')}>
          {files.map((a) => (
            <li key={a.id}>
              <a href={a.url} download={a.filename}>
                {a.filename}
              </a>
              {a.size !== null && (
                <span className="muted">
                  {' '}
                  · {t('conversations.size', { size: fmt.integer(Math.ceil(a.size / 1024)) })}
                </span>
              )}
            </li>
          ))}
        </ul>
      )}
    </article>
  );
}
