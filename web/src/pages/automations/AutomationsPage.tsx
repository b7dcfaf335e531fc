import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Loading, PageHeader } from '../../components/ui.tsx';
import { useModuleMeta, useUsers } from '../../queries.ts';
import { useFmt } from '../../session.tsx';
import {
  type Autoresponder,
  automationKeys,
  type Kind,
  type Rule,
  useAutomations,
  type WorkflowRule,
} from './api.ts';
import { CriteriaSummary } from './CriteriaSummary.tsx';
import './automations.css';

// Automations (F3.9, F3.10), admins only: the org's autoresponders and workflow email rules with
// what each matches, when it sends and to whom; switch each on or off, edit or delete it.

/** "2 days after Created Time": the anchor named by its field's label. */
export function Timing({ rule }: { rule: Autoresponder }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const meta = useModuleMeta(rule.module);
  const field = meta.data?.fields.find((f) => f.apiName === rule.anchorField);
  return (
    <>
      {t('automations.timing', {
        count: rule.days,
        days: fmt.integer(rule.days),
        field: field?.label ?? rule.anchorField,
      })}
    </>
  );
}

function Recipients({ rule }: { rule: WorkflowRule }) {
  const { t } = useTranslation();
  const users = useUsers();
  const names = rule.toUserIds.map((id) => users.data?.find((u) => u.id === id)?.name ?? id);
  return <>{[rule.toRecord ? t('automations.toRecord') : null, ...names].filter(Boolean).join(', ')}</>;
}

function RuleActions({ kind, rule }: { kind: Kind; rule: Rule }) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const path = `/api/automations/${seg(kind)}/${seg(rule.id)}`;
  const toggle = useMutation({
    mutationFn: (active: boolean) => api.post(`${path}/active`, { active }),
    onSettled: () => qc.invalidateQueries({ queryKey: automationKeys.all }),
  });
  const [wanted, setWanted] = useState<boolean | null>(null);
  const active = wanted ?? rule.active;
  const remove = useMutation({
    mutationFn: () => api.del(path),
    onSettled: () => qc.invalidateQueries({ queryKey: automationKeys.all }),
  });
  return (
    <>
      <td>
        <label className="switch">
          <input
            type="checkbox"
            role="switch"
            aria-checked={active}
            checked={active}
            disabled={toggle.isPending}
            aria-label={t('automations.activeFor', { name: rule.name })}
            onChange={(e) => {
              // Shown at once (the mutation's own state reaches React a tick later, and a controlled
              // checkbox snaps back meanwhile), until the list is read again.
              setWanted(e.target.checked);
              toggle.mutate(e.target.checked, { onSettled: () => setWanted(null) });
            }}
          />{' '}
          {rule.active ? t('automations.on') : t('automations.off')}
        </label>
        <ErrorBanner error={toggle.error ?? remove.error} />
      </td>
      <td className="actions">
        <Link className="btn btn-small" to={`/settings/automations/${seg(kind)}/${seg(rule.id)}`}>
          {t('common.edit')}
        </Link>
        <button
          type="button"
          className="btn btn-small btn-danger"
          disabled={remove.isPending}
          onClick={() =>
            window.confirm(t('automations.confirmDelete', { name: rule.name })) && remove.mutate()
          }
        >
          {t('common.delete')}
        </button>
      </td>
    </>
  );
}

function NameCell({ rule }: { rule: Rule }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  return (
    <td>
      <strong>{rule.name}</strong>
      <div className="muted">
        {t('automations.createdBy', { name: rule.creatorName ?? '', at: fmt.dateTime(rule.createdAt) })}
      </div>
    </td>
  );
}

function TemplateCell({ rule }: { rule: Rule }) {
  const { t } = useTranslation();
  return (
    <td>
      {rule.templateDeleted ? (
        <span className="automation-warning">
          {t('automations.templateDeleted', { name: rule.templateName })}
        </span>
      ) : (
        <Link to={`/templates/${seg(rule.templateId)}`}>{rule.templateName}</Link>
      )}
    </td>
  );
}

export function AutomationsPage() {
  const { t } = useTranslation();
  const q = useAutomations();
  return (
    <div>
      <PageHeader
        title={t('automations.title')}
        sub={t('automations.intro')}
        actions={
          <>
            <Link className="btn btn-primary" to="/settings/automations/new/autoresponder">
              {t('automations.newAutoresponder')}
            </Link>
            <Link className="btn btn-primary" to="/settings/automations/new/workflow">
              {t('automations.newWorkflow')}
            </Link>
          </>
        }
      />
      <ErrorBanner error={q.error} />
      {!q.data ? (
        !q.error && <Loading />
      ) : (
        <>
          <section className="card" aria-labelledby="autoresponders-h">
            <h2 id="autoresponders-h">{t('automations.autoresponders')}</h2>
            <p className="muted">{t('automations.autorespondersHelp')}</p>
            {q.data.autoresponders.length === 0 ? (
              <p className="muted">{t('automations.noAutoresponders')}</p>
            ) : (
              <table className="data-table" data-testid="autoresponders">
                <thead>
                  <tr>
                    <th>{t('automations.name')}</th>
                    <th>{t('automations.module')}</th>
                    <th>{t('automations.template')}</th>
                    <th>{t('automations.criteria')}</th>
                    <th>{t('automations.when')}</th>
                    <th>{t('automations.active')}</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {q.data.autoresponders.map((a) => (
                    <tr key={a.id}>
                      <NameCell rule={a} />
                      <td>{a.moduleLabel}</td>
                      <TemplateCell rule={a} />
                      <td>
                        <CriteriaSummary module={a.module} criteria={a.criteria} />
                      </td>
                      <td>
                        <Timing rule={a} />
                      </td>
                      <RuleActions kind="autoresponder" rule={a} />
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
          <section className="card" aria-labelledby="workflow-h">
            <h2 id="workflow-h">{t('automations.workflowRules')}</h2>
            <p className="muted">{t('automations.workflowHelp')}</p>
            {q.data.workflowRules.length === 0 ? (
              <p className="muted">{t('automations.noWorkflowRules')}</p>
            ) : (
              <table className="data-table" data-testid="workflow-rules">
                <thead>
                  <tr>
                    <th>{t('automations.name')}</th>
                    <th>{t('automations.module')}</th>
                    <th>{t('automations.template')}</th>
                    <th>{t('automations.criteria')}</th>
                    <th>{t('automations.runsOn')}</th>
                    <th>{t('automations.sendsTo')}</th>
                    <th>{t('automations.active')}</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {q.data.workflowRules.map((w) => (
                    <tr key={w.id}>
                      <NameCell rule={w} />
                      <td>{w.moduleLabel}</td>
                      <TemplateCell rule={w} />
                      <td>
                        <CriteriaSummary module={w.module} criteria={w.criteria} />
                      </td>
                      <td>
                        {[
                          w.onCreate ? t('automations.onCreate') : null,
                          w.onEdit ? t('automations.onEdit') : null,
                        ]
                          .filter(Boolean)
                          .join(', ')}
                      </td>
                      <td>
                        <Recipients rule={w} />
                      </td>
                      <RuleActions kind="workflow" rule={w} />
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
        </>
      )}
    </div>
  );
}
