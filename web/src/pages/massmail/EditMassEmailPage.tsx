import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { api, seg } from '../../api.ts';
import { FilterBuilder } from '../../components/FilterBuilder.tsx';
import { ErrorBanner, Loading, Notice, PageHeader } from '../../components/ui.tsx';
import { isoToLocalInput, localInputToIso } from '../../format.ts';
import { useModuleMeta } from '../../queries.ts';
import { useMe } from '../../session.tsx';
import type { Criteria } from '../../types.ts';
import { type TemplateSummary, useTemplates } from '../templates/queries.ts';
import { type Audience, AudienceSummary } from './audience.tsx';
import {
  AddressSelect,
  type Choice,
  choiceToValue,
  type FollowupDraft,
  FollowupFields,
  followupBody,
  LimitShort,
  limitShortDetails,
  newFollowup,
  SendAtField,
  valueToChoice,
} from './compose.tsx';
import { TriggerActionsSection } from './triggers.tsx';

// Editing a mass email (F3.5): a scheduled or stopped one in full, and, while they have not gone
// out, its follow-ups (also under a sent one). Only the creator edits; the server says so too.
// An edit saved less than 15 minutes before the send time stops it: the summary says so.

interface FollowupRow {
  id: string;
  name: string;
  templateId: string;
  audience: FollowupDraft['audience'];
  days: number | null;
  sendAt: string | null;
  startedAt: string | null;
  status: string;
}
interface MassDetail {
  id: string;
  name: string;
  module: string;
  status: string;
  stopReason: string | null;
  sendAt: string | null;
  templateId: string;
  from: Choice;
  replyTo: Choice | null;
  audience: Audience;
  allowWait: boolean;
  createdBy: string;
  followups: FollowupRow[];
}

/** What the summary shows after an edit (router state). */
export interface EditOutcome {
  name: string;
  stoppedBecauseEditedLate: boolean;
}

export function EditMassEmailPage() {
  const { t } = useTranslation();
  const { id = '' } = useParams();
  const me = useMe();
  const m = useQuery({
    queryKey: ['mass-email', id],
    queryFn: () => api.get<MassDetail>(`/api/mass-emails/${seg(id)}`),
  });
  const templates = useTemplates({ module: m.data?.module ?? '', folderId: '', q: '' });
  if (m.error) return <ErrorBanner error={m.error} />;
  if (!m.data || !templates.data) return <Loading />;
  if (m.data.createdBy !== me.user.id) return <Notice>{t('massmail.onlyCreator')}</Notice>;
  return <EditForm key={m.data.id} m={m.data} templates={templates.data} />;
}

function EditForm({ m, templates }: { m: MassDetail; templates: TemplateSummary[] }) {
  const { t } = useTranslation();
  const me = useMe();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const tz = me.user.timeZone;
  const editable = m.status === 'scheduled' || m.status === 'stopped';
  const [name, setName] = useState(m.name);
  const [templateId, setTemplateId] = useState(m.templateId);
  const [from, setFrom] = useState(choiceToValue(m.from));
  const [replyTo, setReplyTo] = useState(choiceToValue(m.replyTo));
  const [sendAt, setSendAt] = useState(isoToLocalInput(m.sendAt, tz));
  const [allowWait, setAllowWait] = useState(m.allowWait);
  const pending = m.followups.filter((f) => !f.startedAt && f.status !== 'sent');
  const [drafts, setDrafts] = useState<Record<string, FollowupDraft>>(() =>
    Object.fromEntries(
      pending.map((f) => [
        f.id,
        {
          templateId: f.templateId,
          audience: f.audience,
          mode: f.days ? 'days' : 'date',
          days: String(f.days ?? 3),
          sendAt: f.days ? '' : isoToLocalInput(f.sendAt, tz),
        } satisfies FollowupDraft,
      ]),
    ),
  );
  const [added, setAdded] = useState<FollowupDraft[]>([]);
  // Recipients from a filter can be refined here; a view or a selection stays as it was chosen.
  const meta = useModuleMeta(m.audience.kind === 'criteria' ? m.module : undefined);
  const [criteria, setCriteria] = useState<Criteria | null>(
    m.audience.kind === 'criteria' ? m.audience.criteria : null,
  );
  const audience: Audience =
    m.audience.kind === 'criteria' && criteria ? { kind: 'criteria', criteria } : m.audience;
  const audienceChanged = audience !== m.audience;
  const save = useMutation({
    mutationFn: async (wait: boolean) => {
      let late = false;
      if (editable) {
        const r = await api.patch<{ stoppedBecauseEditedLate: boolean }>(`/api/mass-emails/${seg(m.id)}`, {
          name,
          templateId,
          from: valueToChoice(from),
          replyTo: valueToChoice(replyTo),
          sendAt: localInputToIso(sendAt, tz),
          allowWait: wait,
          ...(audienceChanged ? { audience } : {}),
        });
        late = r.stoppedBecauseEditedLate;
      }
      for (const f of pending) {
        const d = drafts[f.id];
        const body = followupBody(d, m.templateId, tz);
        await api.patch(`/api/mass-emails/${seg(f.id)}`, {
          templateId: body.templateId,
          followup: {
            audience: body.audience,
            ...('sendAt' in body ? { sendAt: body.sendAt } : { days: body.days, sendAt: null }),
          },
        });
      }
      for (const d of added)
        await api.post(`/api/mass-emails/${seg(m.id)}/followups`, followupBody(d, templateId, tz));
      return late;
    },
    onSuccess: async (late) => {
      await qc.invalidateQueries({ queryKey: ['mass-emails'] });
      await qc.invalidateQueries({ queryKey: ['mass-email', m.id] });
      navigate('/mass-email', {
        state: { massEdit: { name, stoppedBecauseEditedLate: late } satisfies EditOutcome },
      });
    },
  });
  return (
    <div>
      <div className="breadcrumbs">
        <Link to="/mass-email">{t('bulk.title')}</Link>
      </div>
      <PageHeader title={t('massmail.editTitle', { name: m.name })} sub={t(`bulk.status.${m.status}`)} />
      {m.status === 'scheduled' && <p className="muted">{t('massmail.editLateWarning')}</p>}
      <section className="panel" aria-label={t('bulk.recipients')}>
        <h2>{t('bulk.recipients')}</h2>
        {editable && meta.data && (
          <FilterBuilder fields={meta.data.fields} initial={criteria} onApply={(c) => setCriteria(c)} />
        )}
        <AudienceSummary module={m.module} audience={audience} />
      </section>
      <form
        className="compose"
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate(allowWait);
        }}
      >
        {editable && (
          <div className="form-grid">
            <label>
              {t('bulk.name')}
              <input
                value={name}
                onChange={(e) => setName(e.target.value)}
                required
                maxLength={200}
                data-testid="mass-edit-name"
              />
            </label>
            <label>
              {t('outreach.template')}
              <select value={templateId} onChange={(e) => setTemplateId(e.target.value)} required>
                {templates.map((tpl) => (
                  <option key={tpl.id} value={tpl.id}>
                    {tpl.name}
                  </option>
                ))}
              </select>
            </label>
            <AddressSelect label={t('outreach.from')} value={from} onChange={setFrom} />
            <AddressSelect label={t('massmail.replyTo')} value={replyTo} onChange={setReplyTo} optional />
            <SendAtField
              label={t('bulk.sendAt', { zone: tz })}
              value={sendAt}
              onChange={setSendAt}
              testId="mass-edit-send-at"
            />
            <label className="checkbox">
              <input type="checkbox" checked={allowWait} onChange={(e) => setAllowWait(e.target.checked)} />{' '}
              {t('bulk.allowWait')}
            </label>
          </div>
        )}
        <section aria-label={t('bulk.followups')}>
          <h2>{t('bulk.followups')}</h2>
          {m.followups
            .filter((f) => !pending.includes(f))
            .map((f) => (
              <p key={f.id} className="muted">
                {t('massmail.followupGone', { name: f.name })}
              </p>
            ))}
          {pending.map((f, i) => (
            <FollowupFields
              key={f.id}
              index={i}
              value={drafts[f.id]}
              templates={templates}
              onChange={(v) => setDrafts({ ...drafts, [f.id]: v })}
            />
          ))}
          {added.map((f, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: drafts have no id; their order is their identity
            <div key={i} className="mass-followup">
              <FollowupFields
                index={pending.length + i}
                value={f}
                templates={templates}
                onChange={(v) => setAdded(added.map((x, j) => (j === i ? v : x)))}
              />
              <button
                type="button"
                className="btn btn-small"
                onClick={() => setAdded(added.filter((_, j) => j !== i))}
              >
                {t('massmail.removeFollowup')}
              </button>
            </div>
          ))}
          {m.status !== 'sent' && (
            <button
              type="button"
              className="btn btn-small"
              onClick={() => setAdded([...added, newFollowup()])}
            >
              {t('bulk.addFollowup')}
            </button>
          )}
        </section>
        {/* A short limit is told with its numbers below, not twice. */}
        <ErrorBanner error={limitShortDetails(save.error) ? null : save.error} />
        <LimitShort
          error={save.error}
          onWait={() => {
            setAllowWait(true);
            save.mutate(true);
          }}
        />
        <div className="form-actions">
          <button
            type="submit"
            className="btn btn-primary"
            disabled={save.isPending}
            data-testid="mass-edit-save"
          >
            {t('common.save')}
          </button>
        </div>
      </form>
      <TriggerActionsSection
        module={m.module}
        emails={[{ id: m.id, name: m.name }, ...m.followups.map((f) => ({ id: f.id, name: f.name }))]}
      />
    </div>
  );
}
