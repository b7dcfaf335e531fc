import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router-dom';
import { api, seg } from '../api.ts';
import { ErrorBanner, Loading, PageHeader } from '../components/ui.tsx';
import { keys, useModuleMeta } from '../queries.ts';
import { useFmt } from '../session.tsx';
import type { ImportPreview, ImportResult } from '../types.ts';

/** CSV import: choose a file, map its columns to fields, see what was imported and what was not. */
export function ImportPage() {
  const { t } = useTranslation();
  const { module = '' } = useParams();
  const fmt = useFmt();
  const qc = useQueryClient();
  const meta = useModuleMeta(module);
  const [csv, setCsv] = useState<string | null>(null);
  const [fileName, setFileName] = useState('');
  const [mapping, setMapping] = useState<Record<string, string | null>>({});

  const preview = useMutation({
    mutationFn: (text: string) =>
      api.post<ImportPreview>(`/api/modules/${seg(module)}/import/preview`, { csv: text }),
    onSuccess: (p) => {
      const m: Record<string, string | null> = {};
      for (const c of p.columns) m[c] = p.suggestedMapping[c] ?? null;
      setMapping(m);
    },
  });
  const run = useMutation({
    mutationFn: () => api.post<ImportResult>(`/api/modules/${seg(module)}/import`, { csv, mapping }),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.records(module) }),
  });

  if (meta.error) return <ErrorBanner error={meta.error} />;
  if (!meta.data) return <Loading />;
  const targets = [
    ...meta.data.fields.filter((f) => !f.system),
    ...meta.data.fields.filter((f) => f.apiName === 'owner'),
  ];
  const used = Object.values(mapping).filter(Boolean);
  const result = run.data;

  return (
    <div className="import-page">
      <PageHeader
        title={t('import.title', { module: meta.data.module.pluralLabel })}
        actions={
          <Link className="btn" to={`/m/${seg(module)}`}>
            {t('import.back', { module: meta.data.module.pluralLabel })}
          </Link>
        }
      />
      <section className="card">
        <h2>{t('import.step1')}</h2>
        <label className="file-input">
          {t('import.file')}{' '}
          <input
            type="file"
            accept=".csv,text/csv"
            onChange={async (e) => {
              const file = e.target.files?.[0];
              run.reset();
              if (!file) return;
              const text = await file.text();
              setFileName(file.name);
              setCsv(text);
              preview.mutate(text);
            }}
          />
        </label>
        <ErrorBanner error={preview.error} />
        {preview.isPending && <Loading />}
      </section>

      {preview.data && csv !== null && (
        <section className="card">
          <h2>{t('import.step2', { file: fileName })}</h2>
          <table className="data-table compact">
            <thead>
              <tr>
                <th>{t('import.column')}</th>
                <th>{t('import.sample')}</th>
                <th>{t('import.field')}</th>
              </tr>
            </thead>
            <tbody>
              {preview.data.columns.map((col, i) => (
                <tr key={col}>
                  <td>{col}</td>
                  <td className="muted">
                    {preview
                      .data!.sample.map((row) => row[i])
                      .filter(Boolean)
                      .slice(0, 3)
                      .join(' · ')}
                  </td>
                  <td>
                    <select
                      aria-label={t('import.mapColumn', { column: col })}
                      value={mapping[col] ?? ''}
                      onChange={(e) => setMapping((m) => ({ ...m, [col]: e.target.value || null }))}
                    >
                      <option value="">{t('import.skip')}</option>
                      {targets.map((f) => (
                        <option
                          key={f.apiName}
                          value={f.apiName}
                          disabled={mapping[col] !== f.apiName && used.includes(f.apiName)}
                        >
                          {f.label}
                          {f.required ? ' *' : ''}
                        </option>
                      ))}
                    </select>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <div className="form-actions">
            <button
              type="button"
              className="btn btn-primary"
              disabled={run.isPending || used.length === 0}
              onClick={() => run.mutate()}
            >
              {run.isPending ? t('import.running') : t('import.run')}
            </button>
          </div>
          <ErrorBanner error={run.error} />
        </section>
      )}

      {result && (
        <section className="card" aria-label={t('import.result')}>
          <h2>{t('import.result')}</h2>
          <p className="import-summary" role="status">
            {t('import.imported', { count: result.imported, formatted: fmt.integer(result.imported) })}
            {' · '}
            {t('import.rejectedCount', {
              count: result.rejectedCount ?? result.rejected.length,
              formatted: fmt.integer(result.rejectedCount ?? result.rejected.length),
            })}
          </p>
          {result.rejected.length > 0 && (
            <table className="data-table compact">
              <thead>
                <tr>
                  <th>{t('import.line')}</th>
                  <th>{t('import.reason')}</th>
                </tr>
              </thead>
              <tbody>
                {result.rejected.map((r) => (
                  <tr key={`${r.line}:${r.reason}`}>
                    <td>{fmt.integer(r.line)}</td>
                    <td>{r.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {(result.rejectedCount ?? 0) > result.rejected.length && (
            <p className="muted">{t('import.moreRejected', { count: result.rejected.length })}</p>
          )}
        </section>
      )}
    </div>
  );
}
