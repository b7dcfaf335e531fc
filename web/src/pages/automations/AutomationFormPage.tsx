import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { ApiError, api } from '../../api.ts';
import { FilterBuilder } from '../../components/FilterBuilder.tsx';
import { ErrorBanner, FormRow, Loading, PageHeader } from '../../components/ui.tsx';
import { useModuleMeta, useModules, useUsers } from '../../queries.ts';
import { useMe } from '../../session.tsx';
import type { Criteria } from '../../types.ts';
import { AddressSelect, choiceToValue, valueToChoice } from '../massmail/compose.tsx';
import { TemplatePerformanceMini } from '../reports/TemplatePerformance.tsx';
import { useTemplates } from '../templates/queries.ts';
import {
  type Autoresponder,
  automationKeys,
  type Kind,
  type Rule,
  savePath,
  useAutomation,
  type WorkflowRule,
} from './api.ts';
import { CriteriaSummary } from './CriteriaSummary.tsx';
import './automations.css';

// A new or edited autoresponder or workflow email rule: module, template (searchable, with how
// it has performed beside it), criteria in the same editor as lists and mass email, then when it
// sends and to whom. The API's errors show on the fields they name, and in full below.

const FORM_ID = 'automation-form';
// Modules whose records carry an email address to send to (as for mass email).
const NO_EMAIL = ['accounts', 'tasks', 'calls'];

export function AutomationFormPage() {
  const { t } = useTranslation();
  const { kind: kindParam = '', id } = useParams();
  const kind: Kind | null = kindParam === 'autoresponder' || kindParam === 'workflow' ? kindParam : null;
  const existing = useAutomation(kind ?? 'workflow', kind ? id : undefined);
  if (!kind) return <p className="muted">{t('errors.notFoundPage')}</p>;
  if (id && existing.error) return <ErrorBanner error={existing.error} />;
  if (id && !existing.data) return <Loading />;
  return <AutomationForm key={id ?? 'new'} kind={kind} rule={id ? existing.data : undefined} />;
}

function TemplatePicker({
  module,
  value,
  onChange,
  currentName,
  error,
}: {
  module: string;
  value: string;
  onChange: (id: string) => void;
  currentName?: string;
  error?: string;
}) {
  const { t } = useTranslation();
  const [q, setQ] = useState('');
  const templates = useTemplates({ module, folderId: '', q });
  const list = templates.data ?? [];
  // The chosen template stays offered while a search hides it.
  const missing = value && !list.some((x) => x.id === value);
  return (
    <div className="automation-template">
      <div className="automation-template-pick">
        <FormRow id="automation-template-q" label={t('automations.searchTemplates')}>
          <input
            id="automation-template-q"
            type="search"
            value={q}
            onChange={(e) => setQ(e.target.value)}
            data-testid="automation-template-search"
          />
        </FormRow>
        <FormRow id="automation-template" label={t('automations.template')} required error={error}>
          <select
            id="automation-template"
            value={value}
            onChange={(e) => onChange(e.target.value)}
            required
            form={FORM_ID}
            data-testid="automation-template"
          >
            <option value="">—</option>
            {missing && <option value={value}>{currentName ?? value}</option>}
            {list.map((tpl) => (
              <option key={tpl.id} value={tpl.id}>
                {tpl.name}
              </option>
            ))}
          </select>
        </FormRow>
        {templates.data && list.length === 0 && (
          <p className="muted">{q ? t('automations.noTemplateMatch') : t('automations.noTemplates')}</p>
        )}
        <ErrorBanner error={templates.error} />
      </div>
      {value && <TemplatePerformanceMini templateId={value} />}
    </div>
  );
}

function AutomationForm({ kind, rule }: { kind: Kind; rule?: Rule }) {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const modules = useModules();
  const users = useUsers();
  const me = useMe();
  const ar = kind === 'autoresponder' ? (rule as Autoresponder | undefined) : undefined;
  const wf = kind === 'workflow' ? (rule as WorkflowRule | undefined) : undefined;
  const candidates = (modules.data ?? []).filter((m) =>
    kind === 'autoresponder' ? m.access.massEmail && !NO_EMAIL.includes(m.apiName) : m.access.read,
  );
  const [name, setName] = useState(rule?.name ?? '');
  const [module, setModule] = useState(rule?.module ?? '');
  const mod = module || candidates[0]?.apiName || '';
  const meta = useModuleMeta(mod || undefined);
  const [templateId, setTemplateId] = useState(rule?.templateId ?? '');
  const [criteria, setCriteria] = useState<Criteria | null>(rule?.criteria ?? null);
  const [from, setFrom] = useState(rule ? choiceToValue(rule.from) : 'user:');
  const [active, setActive] = useState(rule?.active ?? true);
  const [anchorField, setAnchorField] = useState(ar?.anchorField ?? 'created_at');
  const [days, setDays] = useState(String(ar?.days ?? 1));
  const [onCreate, setOnCreate] = useState(wf?.onCreate ?? true);
  const [onEdit, setOnEdit] = useState(wf?.onEdit ?? false);
  const [toRecord, setToRecord] = useState(wf?.toRecord ?? true);
  const [toUserIds, setToUserIds] = useState<string[]>(wf?.toUserIds ?? []);
  const dateFields = (meta.data?.fields ?? []).filter(
    (f) => (f.type === 'date' || f.type === 'datetime') && (!f.system || f.apiName === 'created_at'),
  );
  const save = useMutation({
    mutationFn: () => {
      const common = {
        module: mod,
        name,
        templateId,
        ...(criteria ? { criteria } : {}),
        from: valueToChoice(from),
        active,
      };
      const body =
        kind === 'autoresponder'
          ? { ...common, anchorField, days: Number(days) }
          : { ...common, onCreate, onEdit, toRecord, toUserIds };
      return rule ? api.put<Rule>(savePath(kind, rule.id), body) : api.post<Rule>(savePath(kind), body);
    },
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: automationKeys.all });
      navigate('/settings/automations');
    },
  });
  const errors = save.error instanceof ApiError ? save.error.fieldErrors() : {};
  const title = !rule
    ? kind === 'autoresponder'
      ? t('automations.newAutoresponder')
      : t('automations.newWorkflow')
    : kind === 'autoresponder'
      ? t('automations.editAutoresponder', { name: rule.name })
      : t('automations.editWorkflow', { name: rule.name });
  return (
    <div className="automation-form">
      <div className="breadcrumbs">
        <Link to="/settings/automations">{t('automations.title')}</Link>
      </div>
      <PageHeader
        title={title}
        sub={kind === 'autoresponder' ? t('automations.autorespondersHelp') : t('automations.workflowHelp')}
      />
      {/* The filter is a form of its own: the rule's fields belong to the form after it. */}
      <section className="card">
        <div className="form-grid">
          <FormRow id="automation-name" label={t('automations.name')} required error={errors.name}>
            <input
              id="automation-name"
              value={name}
              onChange={(e) => setName(e.target.value)}
              required
              maxLength={200}
              form={FORM_ID}
              data-testid="automation-name"
            />
          </FormRow>
          <FormRow id="automation-module" label={t('automations.module')} required error={errors.module}>
            <select
              id="automation-module"
              value={mod}
              onChange={(e) => {
                setModule(e.target.value);
                setCriteria(null);
                setTemplateId('');
                setAnchorField('created_at');
              }}
              data-testid="automation-module"
            >
              {candidates.map((m) => (
                <option key={m.apiName} value={m.apiName}>
                  {m.pluralLabel}
                </option>
              ))}
            </select>
          </FormRow>
        </div>
        {mod && (
          <TemplatePicker
            key={mod}
            module={mod}
            value={templateId}
            onChange={setTemplateId}
            currentName={rule?.module === mod ? rule.templateName : undefined}
            error={errors.templateId}
          />
        )}
      </section>
      <section className="card" aria-labelledby="automation-criteria-h">
        <h2 id="automation-criteria-h">{t('automations.criteria')}</h2>
        <p className="muted">{t('automations.criteriaHelp')}</p>
        {meta.data && (
          <FilterBuilder key={mod} fields={meta.data.fields} initial={criteria} onApply={setCriteria} />
        )}
        <p data-testid="automation-criteria">
          <strong>{t('automations.matches')}</strong> <CriteriaSummary module={mod} criteria={criteria} />
        </p>
        {errors.criteria && <div className="field-error">{errors.criteria}</div>}
      </section>
      <form
        id={FORM_ID}
        className="card"
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate();
        }}
      >
        <div className="form-grid">
          {kind === 'autoresponder' ? (
            <>
              <FormRow id="automation-days" label={t('automations.days')} required error={errors.days}>
                <input
                  id="automation-days"
                  type="number"
                  min={0}
                  max={3650}
                  step={1}
                  required
                  value={days}
                  onChange={(e) => setDays(e.target.value)}
                  data-testid="automation-days"
                />
              </FormRow>
              <FormRow
                id="automation-anchor"
                label={t('automations.after')}
                required
                error={errors.anchorField}
              >
                <select
                  id="automation-anchor"
                  value={anchorField}
                  onChange={(e) => setAnchorField(e.target.value)}
                  data-testid="automation-anchor"
                >
                  {dateFields.map((f) => (
                    <option key={f.apiName} value={f.apiName}>
                      {f.label}
                    </option>
                  ))}
                </select>
              </FormRow>
              <p className="muted wide-note">{t('automations.onceNote')}</p>
            </>
          ) : (
            <>
              <FormRow id="automation-runs" label={t('automations.runsOn')} required error={errors.onCreate}>
                <fieldset className="checkbox-group" id="automation-runs">
                  <label className="checkbox">
                    <input
                      type="checkbox"
                      checked={onCreate}
                      onChange={(e) => setOnCreate(e.target.checked)}
                      data-testid="automation-on-create"
                    />{' '}
                    {t('automations.onCreateLong')}
                  </label>
                  <label className="checkbox">
                    <input
                      type="checkbox"
                      checked={onEdit}
                      onChange={(e) => setOnEdit(e.target.checked)}
                      data-testid="automation-on-edit"
                    />{' '}
                    {t('automations.onEditLong')}
                  </label>
                </fieldset>
              </FormRow>
              <FormRow
                id="automation-to"
                label={t('automations.sendsTo')}
                required
                error={errors.toRecord ?? errors.toUserIds}
              >
                <fieldset className="checkbox-group" id="automation-to">
                  <label className="checkbox">
                    <input
                      type="checkbox"
                      checked={toRecord}
                      onChange={(e) => setToRecord(e.target.checked)}
                      data-testid="automation-to-record"
                    />{' '}
                    {t('automations.toRecordLong')}
                  </label>
                  {(users.data ?? [])
                    .filter((u) => u.status !== 'deactivated' || toUserIds.includes(u.id))
                    .map((u) => (
                      <label key={u.id} className="checkbox">
                        <input
                          type="checkbox"
                          checked={toUserIds.includes(u.id)}
                          onChange={(e) =>
                            setToUserIds(
                              e.target.checked ? [...toUserIds, u.id] : toUserIds.filter((x) => x !== u.id),
                            )
                          }
                        />{' '}
                        {u.name || u.email}
                      </label>
                    ))}
                </fieldset>
              </FormRow>
            </>
          )}
          <AddressSelect
            label={t('outreach.from')}
            value={from}
            onChange={setFrom}
            testId="automation-from"
          />
          {errors.from && <div className="field-error">{errors.from}</div>}
          {/* A rule sends as the admin who created it, whoever edits it later. */}
          {rule && rule.createdBy !== me.user.id && from === 'user:' && (
            <p className="muted wide-note">
              {t('automations.creatorAddress', { name: rule.creatorName ?? '' })}
            </p>
          )}
          <label className="checkbox">
            <input
              type="checkbox"
              checked={active}
              onChange={(e) => setActive(e.target.checked)}
              data-testid="automation-active"
            />{' '}
            {t('automations.activeLong')}
          </label>
        </div>
        <ErrorBanner error={save.error} />
        <div className="form-actions">
          <button
            type="submit"
            className="btn btn-primary"
            disabled={save.isPending}
            data-testid="automation-save"
          >
            {save.isPending ? t('common.saving') : t('common.save')}
          </button>
          <Link className="btn" to="/settings/automations">
            {t('common.cancel')}
          </Link>
        </div>
      </form>
    </div>
  );
}
