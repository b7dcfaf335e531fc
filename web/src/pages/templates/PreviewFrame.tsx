import { useTranslation } from 'react-i18next';
import type { Rendered } from './queries.ts';

// The HTML of a template is the author's (and merge values are escaped, but still): it is shown in
// an iframe with an empty sandbox (no scripts, no forms, no same-origin access, no top navigation)
// and a Content-Security-Policy that lets nothing but images and inline styles load.
const CSP =
  "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; font-src https: data:";

export function srcDoc(html: string): string {
  return `<!doctype html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${CSP}"><base target="_blank">${html}`;
}

/** A rendered (or stored) template: subject, HTML in a sandboxed frame, plain text. */
export function PreviewFrame({ rendered, label }: { rendered: Rendered; label: string }) {
  const { t } = useTranslation();
  return (
    <section className="tpl-preview" aria-label={label}>
      <dl className="tpl-preview-subject">
        <dt>{t('templates.subject')}</dt>
        <dd data-testid="preview-subject">{rendered.subject}</dd>
      </dl>
      {rendered.html ? (
        <iframe
          className="tpl-frame"
          title={t('templates.htmlPreview')}
          sandbox=""
          referrerPolicy="no-referrer"
          srcDoc={srcDoc(rendered.html)}
        />
      ) : (
        <p className="muted">{t('templates.noHtml')}</p>
      )}
      <details className="tpl-preview-text">
        <summary>{t('templates.textVersion')}</summary>
        <pre>{rendered.text}</pre>
      </details>
    </section>
  );
}
