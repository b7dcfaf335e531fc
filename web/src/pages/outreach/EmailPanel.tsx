import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Notice } from '../../components/ui.tsx';
import { useFmt, useMe } from '../../session.tsx';
import { WatchControl } from '../inbox/WatchControl.tsx';
import { TemplatePerformanceMini } from '../reports/TemplatePerformance.tsx';
import { PreviewFrame } from '../templates/PreviewFrame.tsx';
import { useTemplates } from '../templates/queries.ts';
import { type EmailStatus, EmailStatusBar, LatestStatus } from './EmailPanelStatus.tsx';

// The record's Emails (F3.1): the messages sent to it with their status, and the compose form
// (a template, or a message written here), with the From / Reply-To choices the server offers.

export interface AddressOption {
  kind: 'user' | 'org_address' | 'owner' | 'template';
  orgAddressId?: string;
  address: string;
  name: string | null;
  label: string;
}

export interface MessageRow {
  id: string;
  kind: string;
  subject: string;
  from_address: string;
  to_address: string;
  status: string;
  smtp_code: number | null;
  smtp_response: string | null;
  sent_at: string | null;
  created_at: string;
  sender_id?: string | null;
  template_id: string | null;
  template_version: number | null;
  /** The derived status (F4.5); in the Emails list. */
  insight?: EmailStatus;
}

type LatestEmailStatus = Parameters<typeof LatestStatus>[0]['latest'];

interface Preview {
  subject: string;
  html: string | null;
  text: string;
  to: { address: string; name: string | null };
}

const optionKey = (o: { kind: string; orgAddressId?: string }) => `${o.kind}:${o.orgAddressId ?? ''}`;
const choiceOf = (key: string) => {
  const [kind, orgAddressId] = key.split(':');
  return orgAddressId ? { kind, orgAddressId } : { kind };
};

export function StatusBadge({ status, title }: { status: string; title?: string | null }) {
  const { t } = useTranslation();
  return (
    <span className={`badge status-${status}`} title={title ?? undefined} data-testid="email-status">
      {t(`outreach.status.${status}`, { defaultValue: status })}
    </span>
  );
}

function Compose({ module, id, onSent }: { module: string; id: string; onSent: () => void }) {
  const { t } = useTranslation();
  const [templateId, setTemplateId] = useState('');
  const [subject, setSubject] = useState('');
  const [from, setFrom] = useState('user:');
  const [replyTo, setReplyTo] = useState('');
  const [preview, setPreview] = useState<Preview | null>(null);
  const editor = useRef<HTMLDivElement>(null);
  const templates = useTemplates({ module, folderId: '', q: '' });
  const base = `/api/modules/${seg(module)}/records/${seg(id)}`;
  const options = useQuery({
    queryKey: ['from-options', module, id, templateId],
    queryFn: () =>
      api.get<{ from: AddressOption[]; replyTo: AddressOption[] }>(
        `${base}/from-options${templateId ? `?templateId=${seg(templateId)}` : ''}`,
      ),
  });
  const body = () => ({
    ...(templateId ? { templateId } : { subject, html: editor.current?.innerHTML ?? '' }),
    from: choiceOf(from),
    ...(replyTo ? { replyTo: choiceOf(replyTo) } : {}),
  });
  const previewM = useMutation({
    mutationFn: () => api.post<Preview>(`${base}/emails/preview`, body()),
    onSuccess: setPreview,
  });
  const send = useMutation({
    mutationFn: () => api.post<MessageRow>(`${base}/emails`, body()),
    onSuccess: onSent,
  });
  const format = (cmd: string) => {
    if (cmd === 'createLink') {
      const url = window.prompt(t('outreach.linkUrl'));
      if (url && /^(https?:|mailto:)/i.test(url)) document.execCommand(cmd, false, url);
    } else document.execCommand(cmd);
    editor.current?.focus();
  };
  // A template's own address is offered only with that template: fall back to "me" without it.
  const fromOptions = options.data?.from ?? [];
  const fromValue = fromOptions.some((o) => optionKey(o) === from) ? from : 'user:';
  return (
    <form
      className="compose"
      aria-label={t('outreach.compose')}
      onSubmit={(e) => {
        e.preventDefault();
        send.mutate();
      }}
    >
      <div className="form-grid">
        <label>
          {t('outreach.template')}
          <select
            data-testid="compose-template"
            value={templateId}
            onChange={(e) => {
              setTemplateId(e.target.value);
              setPreview(null);
            }}
          >
            <option value="">{t('outreach.noTemplate')}</option>
            {(templates.data ?? []).map((tpl) => (
              <option key={tpl.id} value={tpl.id}>
                {tpl.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('outreach.from')}
          <select data-testid="compose-from" value={fromValue} onChange={(e) => setFrom(e.target.value)}>
            {fromOptions.map((o) => (
              <option key={optionKey(o)} value={optionKey(o)}>
                {o.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('outreach.replyTo')}
          <select value={replyTo} onChange={(e) => setReplyTo(e.target.value)}>
            <option value="">{t('outreach.sameAsFrom')}</option>
            {(options.data?.replyTo ?? []).map((o) => (
              <option key={optionKey(o)} value={optionKey(o)}>
                {o.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      {templateId && <TemplatePerformanceMini templateId={templateId} />}
      {!templateId && (
        <>
          <label className="wide">
            {t('outreach.subject')}
            <input
              data-testid="compose-subject"
              value={subject}
              onChange={(e) => setSubject(e.target.value)}
              maxLength={998}
            />
          </label>
          <div className="rte-toolbar" role="toolbar" aria-label={t('outreach.formatting')}>
            <button type="button" className="btn btn-small" onClick={() => format('bold')}>
              <b>{t('outreach.bold')}</b>
            </button>
            <button type="button" className="btn btn-small" onClick={() => format('italic')}>
              <i>{t('outreach.italic')}</i>
            </button>
            <button type="button" className="btn btn-small" onClick={() => format('insertUnorderedList')}>
              {t('outreach.list')}
            </button>
            <button type="button" className="btn btn-small" onClick={() => format('createLink')}>
              {t('outreach.link')}
            </button>
          </div>
          {/* biome-ignore lint/a11y/useSemanticElements: rich text needs contentEditable, not a textarea */}
          <div
            ref={editor}
            className="rte"
            contentEditable
            tabIndex={0}
            role="textbox"
            aria-multiline="true"
            aria-label={t('outreach.body')}
            data-testid="compose-body"
            suppressContentEditableWarning
          />
        </>
      )}
      <ErrorBanner error={options.error ?? previewM.error ?? send.error} />
      <div className="form-actions">
        <button type="button" className="btn" onClick={() => previewM.mutate()} disabled={previewM.isPending}>
          {t('outreach.preview')}
        </button>
        <button
          type="submit"
          className="btn btn-primary"
          disabled={send.isPending}
          data-testid="compose-send"
        >
          {t('outreach.send')}
        </button>
      </div>
      {preview && (
        <div data-testid="compose-preview">
          <p className="muted">{t('outreach.previewTo', { to: preview.to.address })}</p>
          <PreviewFrame
            rendered={{ subject: preview.subject, html: preview.html, text: preview.text }}
            label={t('outreach.preview')}
          />
        </div>
      )}
    </form>
  );
}

export function MessageDetail({ id, onClose }: { id: string; onClose: () => void }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const me = useMe();
  const q = useQuery({
    queryKey: ['message', id],
    queryFn: () =>
      api.get<MessageRow & { html: string | null; text: string | null }>(`/api/messages/${seg(id)}`),
  });
  if (q.error) return <ErrorBanner error={q.error} />;
  if (!q.data) return null;
  const m = q.data;
  return (
    <section className="card message-detail" aria-label={t('outreach.message')}>
      <div className="card-header">
        <h3>{m.subject || t('common.untitled')}</h3>
        <button type="button" className="btn btn-small" onClick={onClose}>
          {t('outreach.close')}
        </button>
      </div>
      <p>
        <StatusBadge status={m.status} /> {m.from_address} → {m.to_address} ·{' '}
        {fmt.dateTime(m.sent_at ?? m.created_at)}
      </p>
      {m.smtp_response && (
        <p className="muted">
          {t('outreach.serverReply')}: {m.smtp_code ? `${m.smtp_code} ` : ''}
          {m.smtp_response}
        </p>
      )}
      {/* ResponseWatch: its sender can be reminded when no reply comes. */}
      {m.status === 'sent' && m.sender_id === me.user.id && <WatchControl messageId={m.id} />}
      {m.html !== null || m.text !== null ? (
        <PreviewFrame
          rendered={{ subject: m.subject, html: m.html, text: m.text ?? '' }}
          label={t('outreach.message')}
        />
      ) : (
        <p className="muted">{t('outreach.renderedAtSend')}</p>
      )}
    </section>
  );
}

export function EmailPanel({ module, id }: { module: string; id: string }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const qc = useQueryClient();
  const [composing, setComposing] = useState(false);
  const [sent, setSent] = useState(false);
  const [open, setOpen] = useState<string | null>(null);
  const key = ['record-emails', module, id];
  const q = useQuery({
    queryKey: key,
    queryFn: () =>
      api.get<{ emails: MessageRow[]; latest: LatestEmailStatus }>(
        `/api/modules/${seg(module)}/records/${seg(id)}/emails`,
      ),
    // Queued messages change state in the background: look again while any is on its way.
    refetchInterval: (query) =>
      query.state.data?.emails.some((e) => ['queued', 'sending', 'deferred'].includes(e.status))
        ? 2000
        : false,
  });
  const emails = q.data?.emails ?? [];
  return (
    <section className="card" aria-label={t('outreach.emails')}>
      <div className="card-header">
        <h2>
          {t('outreach.emails')} <span className="badge">{fmt.integer(emails.length)}</span>
          <LatestStatus latest={q.data?.latest ?? null} />
        </h2>
        <button
          type="button"
          className="btn btn-small btn-primary"
          data-testid="send-email"
          onClick={() => {
            setComposing((c) => !c);
            setSent(false);
          }}
        >
          {t('outreach.sendEmail')}
        </button>
      </div>
      {sent && <Notice>{t('outreach.queued')}</Notice>}
      {composing && (
        <Compose
          module={module}
          id={id}
          onSent={async () => {
            setComposing(false);
            setSent(true);
            await qc.invalidateQueries({ queryKey: key });
          }}
        />
      )}
      <ErrorBanner error={q.error} />
      {emails.length === 0 ? (
        <p className="muted">{t('outreach.noEmails')}</p>
      ) : (
        <table className="data-table compact" data-testid="emails-list">
          <thead>
            <tr>
              <th>{t('outreach.subject')}</th>
              <th>{t('outreach.to')}</th>
              <th>{t('outreach.statusLabel')}</th>
              <th>{t('outreach.date')}</th>
            </tr>
          </thead>
          <tbody>
            {emails.map((e) => (
              <tr key={e.id}>
                <td>
                  <button type="button" className="link-button" onClick={() => setOpen(e.id)}>
                    {e.subject || t('common.untitled')}
                  </button>
                </td>
                <td>{e.to_address}</td>
                <td>
                  {/* Once sent, the status bar; before that (queued, retrying, failed) the delivery status. */}
                  {e.insight && (e.status === 'sent' || e.insight.state === 'bounced') ? (
                    <EmailStatusBar status={e.insight} />
                  ) : (
                    <StatusBadge status={e.status} title={e.smtp_response} />
                  )}
                </td>
                <td>{fmt.dateTime(e.sent_at ?? e.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {open && <MessageDetail id={open} onClose={() => setOpen(null)} />}
    </section>
  );
}
