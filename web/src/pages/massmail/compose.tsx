import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { ApiError, api, seg } from '../../api.ts';
import { ErrorBanner } from '../../components/ui.tsx';
import { localInputToIso } from '../../format.ts';
import { useFmt, useMe } from '../../session.tsx';
import { PreviewFrame } from '../templates/PreviewFrame.tsx';
import type { Rendered, TemplateSummary } from '../templates/queries.ts';
import { type Audience, useFirstRecipient } from './audience.tsx';

// The parts of the mass email form: template preview, From / Reply-To, the send time in the
// user's zone, the daily-limit answer with its numbers, and the follow-ups.

/** The template merged with the first person who would receive it, in a sandboxed frame. */
export function MassTemplatePreview({
  module,
  audience,
  templateId,
}: {
  module: string;
  audience: Audience | null;
  templateId: string;
}) {
  const { t } = useTranslation();
  const first = useFirstRecipient(module, audience);
  const recordId = first.data?.recordId;
  const preview = useQuery({
    queryKey: ['mass-preview', templateId, recordId],
    queryFn: () => api.post<Rendered>(`/api/templates/${seg(templateId)}/preview`, { recordId }),
    enabled: !!templateId && !!recordId,
  });
  if (!templateId) return null;
  if (first.data === null) return <p className="muted">{t('massmail.previewNeedsRecipient')}</p>;
  return (
    <div data-testid="mass-preview">
      <ErrorBanner error={preview.error} />
      {preview.data && (
        <>
          <p className="muted">{t('massmail.previewFor', { name: first.data?.name || first.data?.email })}</p>
          <PreviewFrame rendered={preview.data} label={t('templates.preview')} />
        </>
      )}
    </div>
  );
}

export interface OrgAddress {
  id: string;
  email: string;
  verified_at: string | null;
}
export const useOrgAddresses = () =>
  useQuery({
    queryKey: ['org-addresses'],
    queryFn: () => api.get<{ addresses: OrgAddress[] }>('/api/org-addresses'),
  });

export type Choice = { kind: 'user' | 'org_address' | 'owner' | 'template'; orgAddressId?: string };
export const choiceToValue = (c: Choice | null | undefined) => (c ? `${c.kind}:${c.orgAddressId ?? ''}` : '');
export function valueToChoice(v: string): Choice | null {
  if (!v) return null;
  const [kind, orgAddressId] = v.split(':') as [Choice['kind'], string];
  return orgAddressId ? { kind, orgAddressId } : { kind };
}

/** From or Reply-To: the user, each record's owner, the template's own, or a verified org address. */
export function AddressSelect({
  label,
  value,
  onChange,
  optional,
  testId,
}: {
  label: string;
  value: string;
  onChange: (v: string) => void;
  optional?: boolean;
  testId?: string;
}) {
  const { t } = useTranslation();
  const me = useMe();
  const addresses = useOrgAddresses();
  return (
    <label>
      {label}
      <select value={value} onChange={(e) => onChange(e.target.value)} data-testid={testId}>
        {optional && <option value="">{t('massmail.replyToNone')}</option>}
        <option value="user:">{`${me.user.name} <${me.user.email}>`}</option>
        <option value="owner:">{t('bulk.ownerAddress')}</option>
        <option value="template:">{t('bulk.templateAddress')}</option>
        {(addresses.data?.addresses ?? [])
          .filter((a) => a.verified_at)
          .map((a) => (
            <option key={a.id} value={`org_address:${a.id}`}>
              {a.email}
            </option>
          ))}
      </select>
    </label>
  );
}

/** A date-time input read in the user's zone, with the instant it means shown back. */
export function SendAtField({
  label,
  value,
  onChange,
  testId,
}: {
  label: string;
  value: string;
  onChange: (v: string) => void;
  testId?: string;
}) {
  const { t } = useTranslation();
  const me = useMe();
  const fmt = useFmt();
  const iso = value ? localInputToIso(value, me.user.timeZone) : null;
  return (
    <label>
      {label}
      <input
        type="datetime-local"
        value={value}
        onChange={(e) => onChange(e.target.value)}
        required
        data-testid={testId}
      />
      {iso && (
        <span className="muted" data-testid={testId ? `${testId}-shown` : undefined}>
          {t('massmail.sendsAt', { when: fmt.dateTime(iso), zone: me.user.timeZone })}
        </span>
      )}
    </label>
  );
}

/** The details of a send refused because today's mass email limit is short, if it is one. */
export function limitShortDetails(error: unknown): Record<string, string> | null {
  if (!(error instanceof ApiError) || error.code !== 'limit_exceeded') return null;
  const d = Object.fromEntries(error.details.map((x) => [x.path ?? '', x.message]));
  return d.limit === undefined ? null : d;
}

/** The numbers of a refused send when today's mass email limit is short. */
export function LimitShort({ error, onWait }: { error: unknown; onWait?: () => void }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const d = limitShortDetails(error);
  if (!d) return null;
  const used = Number(d.used);
  const limit = Number(d.limit);
  const recipients = Number(d.recipients);
  const left = Math.max(0, limit - used);
  return (
    <div className="alert" data-testid="mass-limit">
      <p>
        {t('massmail.limitShort', {
          recipients: fmt.integer(recipients),
          left: fmt.integer(left),
          limit: fmt.integer(limit),
          wait: fmt.integer(Math.max(0, recipients - left)),
          resets: fmt.dateTime(d.resetsAt),
        })}
      </p>
      {onWait && (
        <button type="button" className="btn" onClick={onWait} data-testid="mass-let-wait">
          {t('massmail.letWait')}
        </button>
      )}
    </div>
  );
}

export const FOLLOWUP_AUDIENCES = ['received', 'opened', 'not_opened', 'clicked', 'not_clicked'] as const;
export interface FollowupDraft {
  templateId: string;
  audience: (typeof FOLLOWUP_AUDIENCES)[number];
  mode: 'days' | 'date';
  days: string;
  sendAt: string;
}
export const newFollowup = (): FollowupDraft => ({
  templateId: '',
  audience: 'not_opened',
  mode: 'days',
  days: '3',
  sendAt: '',
});

/** A draft → the API's follow-up ('opened' only ever takes a number of days). */
export function followupBody(f: FollowupDraft, fallbackTemplate: string, timeZone: string) {
  const byDate = f.mode === 'date' && f.audience !== 'opened';
  return {
    templateId: f.templateId || fallbackTemplate,
    audience: f.audience,
    ...(byDate ? { sendAt: localInputToIso(f.sendAt, timeZone) } : { days: Number(f.days) }),
  };
}

/** One follow-up's fields: who, when (days after, or a date), which template. */
export function FollowupFields({
  value,
  onChange,
  templates,
  index,
}: {
  value: FollowupDraft;
  onChange: (f: FollowupDraft) => void;
  templates: TemplateSummary[];
  index: number;
}) {
  const { t } = useTranslation();
  const set = (p: Partial<FollowupDraft>) => onChange({ ...value, ...p });
  const onlyDays = value.audience === 'opened';
  const mode = onlyDays ? 'days' : value.mode;
  return (
    <fieldset className="form-grid" aria-label={t('massmail.followupN', { n: index + 1 })}>
      <legend>{t('massmail.followupN', { n: index + 1 })}</legend>
      <label>
        {t('bulk.followupWho')}
        <select
          value={value.audience}
          onChange={(e) => set({ audience: e.target.value as FollowupDraft['audience'] })}
        >
          {FOLLOWUP_AUDIENCES.map((a) => (
            <option key={a} value={a}>
              {t(`bulk.followupAudience.${a}`)}
            </option>
          ))}
        </select>
      </label>
      <div>
        <label>
          {t('massmail.followupWhen')}
          <select
            value={mode}
            disabled={onlyDays}
            onChange={(e) => set({ mode: e.target.value as 'days' | 'date' })}
          >
            <option value="days">{t('massmail.followupAfterDays')}</option>
            <option value="date">{t('massmail.followupOnDate')}</option>
          </select>
        </label>
        {onlyDays && <p className="muted">{t('massmail.openedOnlyDays')}</p>}
      </div>
      {mode === 'days' ? (
        <label>
          {t('bulk.followupDays')}
          <input
            type="number"
            min={1}
            max={365}
            required
            value={value.days}
            onChange={(e) => set({ days: e.target.value })}
          />
        </label>
      ) : (
        <SendAtField
          label={t('massmail.followupDate')}
          value={value.sendAt}
          onChange={(v) => set({ sendAt: v })}
        />
      )}
      <label>
        {t('outreach.template')}
        <select value={value.templateId} onChange={(e) => set({ templateId: e.target.value })}>
          <option value="">{t('bulk.sameTemplate')}</option>
          {templates.map((tpl) => (
            <option key={tpl.id} value={tpl.id}>
              {tpl.name}
            </option>
          ))}
        </select>
      </label>
    </fieldset>
  );
}
