import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useParams, useSearchParams } from 'react-router-dom';
import { api, seg } from '../api.ts';
import { FieldInput } from '../components/FieldInput.tsx';
import { FieldValue, plainValue } from '../components/FieldValue.tsx';
import { FilterBuilder } from '../components/FilterBuilder.tsx';
import { ErrorBanner, Loading, Notice, PageHeader } from '../components/ui.tsx';
import { combineCriteria, fromFormValue, sortable, toFormValue } from '../fields.ts';
import { keys, useModuleMeta, useUsers, useViews } from '../queries.ts';
import { useFmt, useMe } from '../session.tsx';
import type { Criteria, CrmRecord, Field, Sort, View } from '../types.ts';
import type { MassEmailSeed } from './massmail/audience.tsx';

const PAGE = 50;

function defaultColumns(fields: Field[]): string[] {
  const own = fields.filter((f) => !f.system && f.type !== 'long_text').slice(0, 6);
  return [...own.map((f) => f.apiName), 'owner'];
}

export function ListPage() {
  const { module = '' } = useParams();
  return <ModuleList key={module} module={module} />;
}

function ModuleList({ module }: { module: string }) {
  const meta = useModuleMeta(module);
  const views = useViews(module);
  if (meta.error || views.error) return <ErrorBanner error={meta.error ?? views.error} />;
  if (!meta.data || !views.data) return <Loading />;
  return (
    <ListBody
      module={module}
      fields={meta.data.fields}
      access={meta.data.module.access}
      views={views.data}
      title={meta.data.module.pluralLabel}
    />
  );
}

type Panel = 'filter' | 'columns' | 'save' | 'mass' | null;

function ListBody({
  module,
  fields,
  access,
  views,
  title,
}: {
  module: string;
  fields: Field[];
  access: { create: boolean; edit: boolean; massEmail?: boolean };
  views: View[];
  title: string;
}) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const me = useMe();
  const fmt = useFmt();
  const users = useUsers();
  const [params, setParams] = useSearchParams();
  const view = views.find((v) => v.id === params.get('view')) ?? views[0];
  const [criteria, setCriteria] = useState<Criteria | null>(null);
  const [sortOverride, setSortOverride] = useState<Sort | null>(null);
  const [columnsOverride, setColumnsOverride] = useState<string[] | null>(null);
  const [panel, setPanel] = useState<Panel>(null);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [allResults, setAllResults] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);

  const byName = useMemo(() => new Map(fields.map((f) => [f.apiName, f])), [fields]);
  const columns = (columnsOverride ?? (view?.columns.length ? view.columns : defaultColumns(fields)))
    .map((c) => byName.get(c))
    .filter((f): f is Field => !!f);
  const sort = sortOverride ?? view?.sort ?? null;
  const filter = { viewId: view?.id, criteria: criteria ?? undefined };
  const dirty = !!criteria || !!sortOverride || !!columnsOverride;
  // Mass email (F3.3) from the selection, else the view and its filter; deals reach their contact.
  const canMassEmail = !!access.massEmail && (module === 'deals' || fields.some((f) => f.type === 'email'));
  const massEmailSeed = (selection: boolean): MassEmailSeed => {
    if (selection && !allResults) return { module, audience: { kind: 'ids', ids: [...selected] } };
    const c = combineCriteria(view?.criteria, criteria);
    if (criteria && c) return { module, audience: { kind: 'criteria', criteria: c } };
    return view
      ? { module, audience: { kind: 'view', viewId: view.id } }
      : { module, audience: { kind: 'criteria', criteria: c ?? { conditions: [] } } };
  };

  const resetSelection = () => {
    setSelected(new Set());
    setAllResults(false);
  };
  const chooseView = (id: string) => {
    setParams(id ? { view: id } : {});
    setCriteria(null);
    setSortOverride(null);
    setColumnsOverride(null);
    setPanel(null);
    resetSelection();
  };

  const list = useInfiniteQuery({
    queryKey: [...keys.records(module), 'list', filter, sort],
    queryFn: ({ pageParam }) =>
      api.post<{ records: CrmRecord[]; nextCursor: string | null }>(
        `/api/modules/${seg(module)}/records/query`,
        {
          ...filter,
          sort: sort ?? undefined,
          limit: PAGE,
          cursor: pageParam ?? undefined,
        },
      ),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.nextCursor,
  });
  const count = useQuery({
    queryKey: [...keys.records(module), 'count', filter],
    queryFn: () => api.post<{ count: number }>(`/api/modules/${seg(module)}/records/count`, filter),
  });
  const records = list.data?.pages.flatMap((p) => p.records) ?? [];
  const total = count.data?.count;

  const userName = (id: string) => {
    const u = users.data?.find((x) => x.id === id);
    return u ? u.name || u.email : undefined;
  };

  const clickSort = (f: Field) => {
    if (!sortable(f)) return;
    const dir = sort?.field === f.apiName && sort.dir === 'asc' ? 'desc' : 'asc';
    setSortOverride({ field: f.apiName, dir });
  };

  const pageIds = records.map((r) => r.id);
  const allOnPage = pageIds.length > 0 && pageIds.every((id) => selected.has(id));
  const selectedCount = allResults ? (total ?? 0) : selected.size;

  const exportHref = (() => {
    const q = new URLSearchParams();
    if (view?.id) q.set('viewId', view.id);
    if (criteria) q.set('criteria', JSON.stringify(criteria));
    if (columns.length) q.set('columns', columns.map((c) => c.apiName).join(','));
    return `/api/modules/${seg(module)}/export?${q}`;
  })();

  const editableOwn = view && !view.systemKey && (view.ownerId === me.user.id || me.profile.isAdmin);
  const saveChanges = useMutation({
    mutationFn: () =>
      api.patch<View>(`/api/views/${seg(view!.id)}`, {
        criteria: combineCriteria(view!.criteria, criteria),
        columns: columns.map((c) => c.apiName),
        sort: sort ?? null,
      }),
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: keys.views(module) });
      setCriteria(null);
      setSortOverride(null);
      setColumnsOverride(null);
      setNotice(t('views.saved'));
    },
  });
  const deleteView = useMutation({
    mutationFn: () => api.del(`/api/views/${seg(view!.id)}`),
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: keys.views(module) });
      chooseView('');
    },
  });

  return (
    <div className="list-page">
      <PageHeader
        title={title}
        sub={total !== undefined ? t('list.count', { count: total, formatted: fmt.integer(total) }) : null}
        actions={
          <>
            {access.create && (
              <Link className="btn" to={`/m/${seg(module)}/import`}>
                {t('list.import')}
              </Link>
            )}
            <a className="btn" href={exportHref} download>
              {t('list.export')}
            </a>
            {canMassEmail && (
              <Link
                className="btn"
                to="/mass-email/new"
                title={t('massmail.listActionHelp')}
                state={{ massEmail: massEmailSeed(false) }}
              >
                {t('massmail.listAction')}
              </Link>
            )}
            {access.create && (
              <Link className="btn btn-primary" to={`/m/${seg(module)}/new`}>
                {t('list.new')}
              </Link>
            )}
          </>
        }
      />

      <div className="toolbar">
        <div className="view-picker">
          <label htmlFor="view-picker">{t('list.view')}</label>
          <select id="view-picker" value={view?.id ?? ''} onChange={(e) => chooseView(e.target.value)}>
            <optgroup label={t('views.system')}>
              {views
                .filter((v) => v.systemKey)
                .map((v) => (
                  <option key={v.id} value={v.id}>
                    {v.name}
                  </option>
                ))}
            </optgroup>
            {views.some((v) => !v.systemKey) && (
              <optgroup label={t('views.custom')}>
                {views
                  .filter((v) => !v.systemKey)
                  .map((v) => (
                    <option key={v.id} value={v.id}>
                      {v.name}
                    </option>
                  ))}
              </optgroup>
            )}
          </select>
        </div>
        <div className="toolbar-buttons">
          <button
            type="button"
            className={`btn${panel === 'filter' ? ' active' : ''}${criteria ? ' has-badge' : ''}`}
            aria-expanded={panel === 'filter'}
            onClick={() => setPanel(panel === 'filter' ? null : 'filter')}
          >
            {criteria ? t('list.filterActive', { count: criteria.conditions.length }) : t('list.filter')}
          </button>
          <button
            type="button"
            className={`btn${panel === 'columns' ? ' active' : ''}`}
            aria-expanded={panel === 'columns'}
            onClick={() => setPanel(panel === 'columns' ? null : 'columns')}
          >
            {t('list.columns')}
          </button>
          <button
            type="button"
            className={`btn${panel === 'save' ? ' active' : ''}`}
            aria-expanded={panel === 'save'}
            onClick={() => setPanel(panel === 'save' ? null : 'save')}
          >
            {t('views.saveAs')}
          </button>
          {editableOwn && dirty && (
            <button
              type="button"
              className="btn"
              onClick={() => saveChanges.mutate()}
              disabled={saveChanges.isPending}
            >
              {t('views.saveChanges')}
            </button>
          )}
          {editableOwn && (
            <button
              type="button"
              className="btn btn-danger-link"
              onClick={() =>
                window.confirm(t('views.confirmDelete', { name: view.name })) && deleteView.mutate()
              }
            >
              {t('views.delete')}
            </button>
          )}
        </div>
      </div>

      {notice && <Notice>{notice}</Notice>}
      <ErrorBanner error={saveChanges.error ?? deleteView.error} />

      {panel === 'filter' && (
        <div className="panel">
          <FilterBuilder
            fields={fields}
            initial={criteria}
            onApply={(c) => {
              setCriteria(c);
              resetSelection();
              setNotice(null);
            }}
            onCancel={() => setPanel(null)}
          />
        </div>
      )}
      {panel === 'columns' && (
        <ColumnChooser
          fields={fields}
          columns={columns.map((c) => c.apiName)}
          onChange={setColumnsOverride}
          onClose={() => setPanel(null)}
        />
      )}
      {panel === 'save' && (
        <SaveViewForm
          module={module}
          body={{
            criteria: combineCriteria(view?.criteria, criteria),
            columns: columns.map((c) => c.apiName),
            sort,
          }}
          onSaved={(v) => {
            setNotice(t('views.created', { name: v.name }));
            chooseView(v.id);
          }}
          onCancel={() => setPanel(null)}
        />
      )}

      {selectedCount > 0 && (
        <section className="selection-bar" aria-label={t('list.selection')}>
          <span>{t('list.selected', { count: selectedCount, formatted: fmt.integer(selectedCount) })}</span>
          {!allResults && allOnPage && total !== undefined && total > selected.size && (
            <button type="button" className="btn btn-link" onClick={() => setAllResults(true)}>
              {t('list.selectAllResults', { count: total, formatted: fmt.integer(total) })}
            </button>
          )}
          <button type="button" className="btn btn-link" onClick={resetSelection}>
            {t('list.clearSelection')}
          </button>
          {canMassEmail && (
            <Link className="btn" to="/mass-email/new" state={{ massEmail: massEmailSeed(true) }}>
              {t('massmail.listAction')}
            </Link>
          )}
          {access.edit && (
            <button type="button" className="btn" onClick={() => setPanel(panel === 'mass' ? null : 'mass')}>
              {t('mass.title')}
            </button>
          )}
        </section>
      )}
      {panel === 'mass' && selectedCount > 0 && (
        <MassUpdateForm
          module={module}
          fields={fields}
          target={allResults ? filter : { ids: [...selected] }}
          count={selectedCount}
          onDone={(n) => {
            setNotice(t('mass.done', { count: n, formatted: fmt.integer(n) }));
            setPanel(null);
            resetSelection();
          }}
          onCancel={() => setPanel(null)}
        />
      )}

      <ErrorBanner error={list.error ?? count.error} />

      <div className="table-wrap">
        <table className="data-table">
          <thead>
            <tr>
              <th className="col-check">
                <input
                  type="checkbox"
                  aria-label={t('list.selectPage')}
                  checked={allOnPage}
                  onChange={(e) => {
                    setAllResults(false);
                    setSelected(e.target.checked ? new Set(pageIds) : new Set());
                  }}
                />
              </th>
              {columns.map((f) => {
                const active = sort?.field === f.apiName;
                const can = sortable(f);
                return (
                  <th
                    key={f.apiName}
                    aria-sort={active ? (sort!.dir === 'asc' ? 'ascending' : 'descending') : undefined}
                  >
                    {can ? (
                      <button type="button" className="th-sort" onClick={() => clickSort(f)}>
                        {f.label}
                        <span className="sort-mark" aria-hidden="true">
                          {active ? (sort!.dir === 'asc' ? '▲' : '▼') : ''}
                        </span>
                      </button>
                    ) : (
                      f.label
                    )}
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {records.map((r) => (
              <tr key={r.id} className={selected.has(r.id) || allResults ? 'selected' : undefined}>
                <td className="col-check">
                  <input
                    type="checkbox"
                    aria-label={t('list.selectRecord', { name: r.displayName || t('common.untitled') })}
                    checked={allResults || selected.has(r.id)}
                    onChange={(e) => {
                      setAllResults(false);
                      setSelected((s) => {
                        const n = new Set(allResults ? pageIds : s);
                        if (e.target.checked) n.add(r.id);
                        else n.delete(r.id);
                        return n;
                      });
                    }}
                  />
                </td>
                {columns.map((f, i) => (
                  <td key={f.apiName}>
                    {i === 0 ? (
                      <Link to={`/m/${seg(module)}/${seg(r.id)}`}>
                        {plainValue(r, f, fmt, userName, [t('common.yes'), t('common.no')]) ||
                          r.displayName ||
                          t('common.untitled')}
                      </Link>
                    ) : (
                      <FieldValue record={r} field={f} />
                    )}
                  </td>
                ))}
              </tr>
            ))}
            {!list.isLoading && records.length === 0 && (
              <tr>
                <td colSpan={columns.length + 1} className="empty">
                  {t('list.empty')}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {list.isLoading && <Loading />}
      {list.hasNextPage && (
        <div className="load-more">
          <button
            type="button"
            className="btn"
            onClick={() => list.fetchNextPage()}
            disabled={list.isFetchingNextPage}
          >
            {list.isFetchingNextPage ? t('common.loading') : t('list.loadMore')}
          </button>
        </div>
      )}
    </div>
  );
}

function ColumnChooser({
  fields,
  columns,
  onChange,
  onClose,
}: {
  fields: Field[];
  columns: string[];
  onChange: (c: string[]) => void;
  onClose: () => void;
}) {
  const { t } = useTranslation();
  const move = (name: string, by: number) => {
    const i = columns.indexOf(name);
    const j = i + by;
    if (i < 0 || j < 0 || j >= columns.length) return;
    const next = [...columns];
    [next[i], next[j]] = [next[j], next[i]];
    onChange(next);
  };
  const ordered = [
    ...columns.map((c) => fields.find((f) => f.apiName === c)).filter((f): f is Field => !!f),
    ...fields.filter((f) => !columns.includes(f.apiName)),
  ];
  return (
    <fieldset className="panel column-chooser">
      <legend>{t('columns.title')}</legend>
      <ul>
        {ordered.map((f) => {
          const on = columns.includes(f.apiName);
          return (
            <li key={f.apiName}>
              <label className="checkbox">
                <input
                  type="checkbox"
                  checked={on}
                  onChange={(e) =>
                    onChange(
                      e.target.checked ? [...columns, f.apiName] : columns.filter((c) => c !== f.apiName),
                    )
                  }
                />{' '}
                {f.label}
              </label>
              {on && (
                <span className="move">
                  <button
                    type="button"
                    className="btn btn-icon"
                    aria-label={t('columns.moveUp', { name: f.label })}
                    onClick={() => move(f.apiName, -1)}
                  >
                    ↑
                  </button>
                  <button
                    type="button"
                    className="btn btn-icon"
                    aria-label={t('columns.moveDown', { name: f.label })}
                    onClick={() => move(f.apiName, 1)}
                  >
                    ↓
                  </button>
                </span>
              )}
            </li>
          );
        })}
      </ul>
      <div className="form-actions">
        <button type="button" className="btn" onClick={onClose}>
          {t('common.done')}
        </button>
      </div>
    </fieldset>
  );
}

function SaveViewForm({
  module,
  body,
  onSaved,
  onCancel,
}: {
  module: string;
  body: { criteria: Criteria | null; columns: string[]; sort: Sort | null };
  onSaved: (v: View) => void;
  onCancel: () => void;
}) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const [name, setName] = useState('');
  const [shared, setShared] = useState(false);
  const save = useMutation({
    mutationFn: () =>
      api.post<View>(`/api/modules/${seg(module)}/views`, {
        name,
        criteria: body.criteria ?? undefined,
        columns: body.columns,
        sort: body.sort ?? undefined,
        shared,
      }),
    onSuccess: async (v) => {
      await qc.invalidateQueries({ queryKey: keys.views(module) });
      onSaved(v);
    },
  });
  return (
    <form
      className="panel inline-form"
      aria-label={t('views.saveAs')}
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <ErrorBanner error={save.error} />
      <label htmlFor="view-name">{t('views.name')}</label>
      <input id="view-name" type="text" value={name} onChange={(e) => setName(e.target.value)} required />
      <label className="checkbox">
        <input type="checkbox" checked={shared} onChange={(e) => setShared(e.target.checked)} />{' '}
        {t('views.shared')}
      </label>
      <button type="submit" className="btn btn-primary" disabled={save.isPending || !name.trim()}>
        {t('views.save')}
      </button>
      <button type="button" className="btn" onClick={onCancel}>
        {t('common.cancel')}
      </button>
    </form>
  );
}

function MassUpdateForm({
  module,
  fields,
  target,
  count,
  onDone,
  onCancel,
}: {
  module: string;
  fields: Field[];
  target: { viewId?: string; criteria?: Criteria; ids?: string[] };
  count: number;
  onDone: (n: number) => void;
  onCancel: () => void;
}) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const fmt = useFmt();
  const choices = fields.filter((f) => !f.system || f.apiName === 'owner');
  const [fieldName, setFieldName] = useState(choices[0]?.apiName ?? '');
  const field = choices.find((f) => f.apiName === fieldName);
  const [value, setValue] = useState<unknown>(
    field ? toFormValue(field, undefined, undefined, fmt.timeZone) : '',
  );
  const run = useMutation({
    mutationFn: () =>
      api.post<{ updated: number }>(`/api/modules/${seg(module)}/records/mass-update`, {
        ...target,
        field: fieldName,
        value: field ? fromFormValue(field, value, fmt.timeZone) : value,
      }),
    onSuccess: async (r) => {
      await qc.invalidateQueries({ queryKey: keys.records(module) });
      onDone(r.updated);
    },
  });
  return (
    <form
      className="panel inline-form"
      aria-label={t('mass.title')}
      onSubmit={(e) => {
        e.preventDefault();
        if (window.confirm(t('mass.confirm', { count, formatted: fmt.integer(count) }))) run.mutate();
      }}
    >
      <ErrorBanner error={run.error} />
      <label>
        {t('mass.field')}{' '}
        <select
          value={fieldName}
          onChange={(e) => {
            setFieldName(e.target.value);
            const f = choices.find((x) => x.apiName === e.target.value);
            setValue(f ? toFormValue(f, undefined, undefined, fmt.timeZone) : '');
          }}
        >
          {choices.map((f) => (
            <option key={f.apiName} value={f.apiName}>
              {f.label}
            </option>
          ))}
        </select>
      </label>
      {field && (
        <div className="mass-value">
          <label htmlFor="mass-value" id="mass-value-label">
            {t('mass.value')}
          </label>{' '}
          <FieldInput id="mass-value" field={field} value={value} onChange={setValue} />
        </div>
      )}
      <button type="submit" className="btn btn-primary" disabled={run.isPending}>
        {t('mass.apply', { count, formatted: fmt.integer(count) })}
      </button>
      <button type="button" className="btn" onClick={onCancel}>
        {t('common.cancel')}
      </button>
    </form>
  );
}
