import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError, api, seg } from '../../api.ts';
import { FieldInput, UserSelect } from '../../components/FieldInput.tsx';
import { ErrorBanner, Loading, Notice } from '../../components/ui.tsx';
import { useModuleMeta } from '../../queries.ts';
import { useFmt } from '../../session.tsx';
import type { Field } from '../../types.ts';
import './triggers.css';

// Trigger actions (F4.9) of a mass email and of each of its follow-ups: when a recipient opens or
// clicks, field updates, follow-up tasks and scheduled calls; when it bounces, field updates only.
// The server checks the limits and values too; its errors are shown next to the action they name.

type Event = 'opened' | 'clicked' | 'bounced';
const EVENTS: Event[] = ['opened', 'clicked', 'bounced'];
interface FieldUpdate {
  field: string;
  value: unknown;
}
interface Task {
  subject: string;
  dueInDays: number;
  status?: string | null;
  priority?: string | null;
  assignee: string;
}
interface Call {
  subject: string;
  owner: string;
  startInDays: number;
  startTime: string;
}
interface Actions {
  fieldUpdates: FieldUpdate[];
  tasks: Task[];
  calls: Call[];
}
interface TriggerSet {
  opened: Actions | null;
  clicked: Actions | null;
  bounced: Actions | null;
  canEdit: boolean;
  limits: { fieldUpdates: number; tasks: number; calls: number };
}
const empty = (): Actions => ({ fieldUpdates: [], tasks: [], calls: [] });

/** The section on the mass email edit page: one editor per mass email or follow-up. */
export function TriggerActionsSection({
  module,
  emails,
}: {
  module: string;
  emails: { id: string; name: string }[];
}) {
  const { t } = useTranslation();
  const [which, setWhich] = useState(emails[0]?.id ?? '');
  return (
    <section className="panel" aria-label={t('triggers.title')} data-testid="trigger-actions">
      <h2>{t('triggers.title')}</h2>
      <p className="muted">{t('triggers.intro')}</p>
      {emails.length > 1 && (
        <label>
          {t('triggers.forEmail')}{' '}
          <select value={which} onChange={(e) => setWhich(e.target.value)}>
            {emails.map((m) => (
              <option key={m.id} value={m.id}>
                {m.name}
              </option>
            ))}
          </select>
        </label>
      )}
      {which && <TriggerEditor key={which} massId={which} module={module} />}
    </section>
  );
}

function TriggerEditor({ massId, module }: { massId: string; module: string }) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const q = useQuery({
    queryKey: ['mass-email-triggers', massId],
    queryFn: () => api.get<TriggerSet>(`/api/mass-emails/${seg(massId)}/triggers`),
  });
  const meta = useModuleMeta(module);
  const tasksMeta = useModuleMeta('tasks');
  const [draft, setDraft] = useState<Record<Event, Actions> | null>(null);
  const [saved, setSaved] = useState(false);
  const save = useMutation({
    mutationFn: (body: Record<Event, Actions>) =>
      api.put<TriggerSet>(`/api/mass-emails/${seg(massId)}/triggers`, body),
    onSuccess: (data) => {
      qc.setQueryData(['mass-email-triggers', massId], data);
      setDraft(null);
      setSaved(true);
    },
  });
  if (q.error) return <ErrorBanner error={q.error} />;
  if (!q.data || !meta.data) return <Loading />;
  const value: Record<Event, Actions> = draft ?? {
    opened: q.data.opened ?? empty(),
    clicked: q.data.clicked ?? empty(),
    bounced: q.data.bounced ?? empty(),
  };
  const errors = save.error instanceof ApiError ? save.error.fieldErrors() : {};
  const set = (ev: Event, a: Actions) => {
    setSaved(false);
    setDraft({ ...value, [ev]: a });
  };
  const fields = meta.data.fields.filter((f) => !f.system && f.type !== 'lookup');
  const taskField = (name: string) => tasksMeta.data?.fields.find((f) => f.apiName === name);
  const { limits, canEdit } = q.data;
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate(value);
      }}
    >
      {!canEdit && <p className="muted">{t('massmail.onlyCreator')}</p>}
      <fieldset disabled={!canEdit} className="trigger-events">
        {EVENTS.map((ev) => {
          const a = value[ev];
          return (
            <fieldset key={ev} className="trigger-event" data-testid={`trigger-${ev}`}>
              <legend>{t(`triggers.when.${ev}`)}</legend>
              <h3>{t('triggers.fieldUpdates', { max: limits.fieldUpdates })}</h3>
              {a.fieldUpdates.map((u, i) => {
                const f = fields.find((x) => x.apiName === u.field);
                const id = `trg-${ev}-f${i}`;
                return (
                  // biome-ignore lint/suspicious/noArrayIndexKey: rows have no id; their order is their identity
                  <div key={i} className="trigger-row">
                    <select
                      aria-label={t('triggers.field')}
                      value={u.field}
                      onChange={(e) =>
                        set(ev, {
                          ...a,
                          fieldUpdates: a.fieldUpdates.map((x, j) =>
                            j === i ? { field: e.target.value, value: '' } : x,
                          ),
                        })
                      }
                    >
                      {fields.map((x) => (
                        <option key={x.apiName} value={x.apiName}>
                          {x.label}
                        </option>
                      ))}
                    </select>
                    {f && (
                      <FieldInput
                        id={id}
                        field={f as Field}
                        value={u.value}
                        onChange={(v) =>
                          set(ev, {
                            ...a,
                            fieldUpdates: a.fieldUpdates.map((x, j) => (j === i ? { ...x, value: v } : x)),
                          })
                        }
                        error={errors[`${ev}.fieldUpdates.${i}`]}
                      />
                    )}
                    <button
                      type="button"
                      className="btn btn-small"
                      onClick={() =>
                        set(ev, { ...a, fieldUpdates: a.fieldUpdates.filter((_, j) => j !== i) })
                      }
                    >
                      {t('triggers.remove')}
                    </button>
                    <RowError message={errors[`${ev}.fieldUpdates.${i}`]} />
                  </div>
                );
              })}
              {a.fieldUpdates.length < limits.fieldUpdates && fields.length > 0 && (
                <button
                  type="button"
                  className="btn btn-small"
                  onClick={() =>
                    set(ev, {
                      ...a,
                      fieldUpdates: [...a.fieldUpdates, { field: fields[0].apiName, value: '' }],
                    })
                  }
                >
                  {t('triggers.addFieldUpdate')}
                </button>
              )}
              {ev !== 'bounced' && (
                <>
                  <h3>{t('triggers.tasks', { max: limits.tasks })}</h3>
                  {a.tasks.map((task, i) => {
                    const upd = (p: Partial<Task>) =>
                      set(ev, { ...a, tasks: a.tasks.map((x, j) => (j === i ? { ...x, ...p } : x)) });
                    const base = `${ev}.tasks.${i}`;
                    return (
                      // biome-ignore lint/suspicious/noArrayIndexKey: rows have no id; their order is their identity
                      <div key={i} className="trigger-row">
                        <input
                          type="text"
                          aria-label={t('triggers.subject')}
                          placeholder={t('triggers.subject')}
                          value={task.subject}
                          maxLength={255}
                          required
                          onChange={(e) => upd({ subject: e.target.value })}
                        />
                        <label>
                          {t('triggers.dueInDays')}{' '}
                          <input
                            type="number"
                            min={0}
                            max={365}
                            value={task.dueInDays}
                            onChange={(e) => upd({ dueInDays: Number(e.target.value) })}
                          />
                        </label>
                        {(['status', 'priority'] as const).map((name) => {
                          const f = taskField(name);
                          return f ? (
                            <label key={name}>
                              {f.label}{' '}
                              <select
                                value={task[name] ?? ''}
                                onChange={(e) => upd({ [name]: e.target.value || null })}
                              >
                                <option value="">{t('common.none')}</option>
                                {(f.options.values ?? []).map((v) => (
                                  <option key={v} value={v}>
                                    {v}
                                  </option>
                                ))}
                              </select>
                            </label>
                          ) : null;
                        })}
                        <AssigneeSelect
                          label={t('triggers.assignee')}
                          value={task.assignee}
                          onChange={(v) => upd({ assignee: v })}
                        />
                        <button
                          type="button"
                          className="btn btn-small"
                          onClick={() => set(ev, { ...a, tasks: a.tasks.filter((_, j) => j !== i) })}
                        >
                          {t('triggers.remove')}
                        </button>
                        <RowError message={errorsUnder(errors, base)} />
                      </div>
                    );
                  })}
                  {a.tasks.length < limits.tasks && (
                    <button
                      type="button"
                      className="btn btn-small"
                      onClick={() =>
                        set(ev, {
                          ...a,
                          tasks: [...a.tasks, { subject: '', dueInDays: 1, assignee: 'record_owner' }],
                        })
                      }
                    >
                      {t('triggers.addTask')}
                    </button>
                  )}
                  <h3>{t('triggers.calls', { max: limits.calls })}</h3>
                  {a.calls.map((call, i) => {
                    const upd = (p: Partial<Call>) =>
                      set(ev, { ...a, calls: a.calls.map((x, j) => (j === i ? { ...x, ...p } : x)) });
                    const base = `${ev}.calls.${i}`;
                    return (
                      // biome-ignore lint/suspicious/noArrayIndexKey: rows have no id; their order is their identity
                      <div key={i} className="trigger-row">
                        <input
                          type="text"
                          aria-label={t('triggers.subject')}
                          placeholder={t('triggers.subject')}
                          value={call.subject}
                          maxLength={255}
                          required
                          onChange={(e) => upd({ subject: e.target.value })}
                        />
                        <label>
                          {t('triggers.startInDays')}{' '}
                          <input
                            type="number"
                            min={0}
                            max={365}
                            value={call.startInDays}
                            onChange={(e) => upd({ startInDays: Number(e.target.value) })}
                          />
                        </label>
                        <label>
                          {t('triggers.startTime')}{' '}
                          <input
                            type="time"
                            value={call.startTime}
                            required
                            onChange={(e) => upd({ startTime: e.target.value })}
                          />
                        </label>
                        <AssigneeSelect
                          label={t('triggers.owner')}
                          value={call.owner}
                          onChange={(v) => upd({ owner: v })}
                        />
                        <button
                          type="button"
                          className="btn btn-small"
                          onClick={() => set(ev, { ...a, calls: a.calls.filter((_, j) => j !== i) })}
                        >
                          {t('triggers.remove')}
                        </button>
                        <RowError message={errorsUnder(errors, base)} />
                      </div>
                    );
                  })}
                  {a.calls.length < limits.calls && (
                    <button
                      type="button"
                      className="btn btn-small"
                      onClick={() =>
                        set(ev, {
                          ...a,
                          calls: [
                            ...a.calls,
                            { subject: '', owner: 'record_owner', startInDays: 1, startTime: '10:00' },
                          ],
                        })
                      }
                    >
                      {t('triggers.addCall')}
                    </button>
                  )}
                </>
              )}
            </fieldset>
          );
        })}
      </fieldset>
      <ErrorBanner error={save.error} />
      {saved && <Notice>{t('triggers.saved')}</Notice>}
      {canEdit && (
        <div className="form-actions">
          <button
            type="submit"
            className="btn btn-primary"
            disabled={save.isPending || !draft}
            data-testid="triggers-save"
          >
            {t('triggers.save')}
          </button>
        </div>
      )}
    </form>
  );
}

/** Every message about a row (its fields' paths start with the row's). */
function errorsUnder(errors: Record<string, string>, base: string): string {
  return Object.entries(errors)
    .filter(([k]) => k.startsWith(base))
    .map(([, m]) => m)
    .join('; ');
}

function RowError({ message }: { message?: string }) {
  return message ? <div className="field-error">{message}</div> : null;
}

/** The record's owner, the mass email's creator, or a chosen user. */
function AssigneeSelect({
  label,
  value,
  onChange,
}: {
  label: string;
  value: string;
  onChange: (v: string) => void;
}) {
  const { t } = useTranslation();
  const kind = value === 'record_owner' || value === 'creator' ? value : 'user';
  return (
    <label>
      {label}{' '}
      <select value={kind} onChange={(e) => onChange(e.target.value === 'user' ? '' : e.target.value)}>
        <option value="record_owner">{t('triggers.recordOwner')}</option>
        <option value="creator">{t('triggers.creator')}</option>
        <option value="user">{t('triggers.user')}</option>
      </select>
      {kind === 'user' && (
        <UserSelect id={`assignee-${label}`} value={value} onChange={onChange} allowEmpty={false} />
      )}
    </label>
  );
}

interface HistoryEntry {
  id: number;
  at: string;
  source: string;
  massEmailId: string | null;
  summary: string;
}

/** What the system did to a record and why (trigger actions name their mass email). */
export function RecordHistoryPanel({ module, id }: { module: string; id: string }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const q = useQuery({
    queryKey: ['record-history', module, id],
    queryFn: () =>
      api.get<{ history: HistoryEntry[] }>(`/api/modules/${seg(module)}/records/${seg(id)}/history`),
  });
  if (q.error) return <ErrorBanner error={q.error} />;
  if (!q.data?.history.length) return null;
  return (
    <section className="card" aria-label={t('triggers.history')} data-testid="record-history">
      <h2>{t('triggers.history')}</h2>
      <ul className="history-list">
        {q.data.history.map((h) => (
          <li key={h.id}>
            <span className="muted">{fmt.dateTime(h.at)}</span> {h.summary}
          </li>
        ))}
      </ul>
    </section>
  );
}
