import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, seg } from '../../api.ts';
import { ErrorBanner } from '../../components/ui.tsx';
import { inboxKeys, type Label, type LabelColour } from './inbox-api.ts';

export const useLabels = () =>
  useQuery({
    queryKey: inboxKeys.labels,
    queryFn: () => api.get<{ labels: Label[]; colours: LabelColour[] }>('/api/inbox/labels'),
    staleTime: 30_000,
  });

export function LabelChip({ label }: { label: Label }) {
  return <span className={`label-chip label-${label.colour}`}>{label.name}</span>;
}

/** The user's labels: add, rename, recolour, delete. */
export function LabelsManager() {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const q = useLabels();
  const [name, setName] = useState('');
  const [colour, setColour] = useState<LabelColour>('blue');
  const refresh = async () => {
    await qc.invalidateQueries({ queryKey: inboxKeys.labels });
    await qc.invalidateQueries({ queryKey: inboxKeys.all });
  };
  const create = useMutation({
    mutationFn: () => api.post('/api/inbox/labels', { name, colour }),
    onSuccess: async () => {
      setName('');
      await refresh();
    },
  });
  const update = useMutation({
    mutationFn: (v: { id: string; colour: LabelColour }) =>
      api.patch(`/api/inbox/labels/${seg(v.id)}`, { colour: v.colour }),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.del(`/api/inbox/labels/${seg(id)}`),
    onSuccess: refresh,
  });
  const colours = q.data?.colours ?? [];
  return (
    <section className="card" aria-label={t('inbox.labels.title')}>
      <h2>{t('inbox.labels.title')}</h2>
      <ul className="label-list">
        {(q.data?.labels ?? []).map((l) => (
          <li key={l.id}>
            <LabelChip label={l} />{' '}
            <select
              aria-label={t('inbox.labels.colourOf', { name: l.name })}
              value={l.colour}
              onChange={(e) => update.mutate({ id: l.id, colour: e.target.value as LabelColour })}
            >
              {colours.map((c) => (
                <option key={c} value={c}>
                  {t(`inbox.colour.${c}`)}
                </option>
              ))}
            </select>{' '}
            <button
              type="button"
              className="btn btn-small"
              aria-label={t('inbox.labels.deleteNamed', { name: l.name })}
              onClick={() => remove.mutate(l.id)}
            >
              {t('common.delete')}
            </button>
          </li>
        ))}
      </ul>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <input
          aria-label={t('inbox.labels.name')}
          placeholder={t('inbox.labels.name')}
          value={name}
          maxLength={40}
          onChange={(e) => setName(e.target.value)}
          required
        />{' '}
        <select
          aria-label={t('inbox.labels.colour')}
          value={colour}
          onChange={(e) => setColour(e.target.value as LabelColour)}
        >
          {colours.map((c) => (
            <option key={c} value={c}>
              {t(`inbox.colour.${c}`)}
            </option>
          ))}
        </select>{' '}
        <button type="submit" className="btn btn-small btn-primary" disabled={create.isPending}>
          {t('inbox.labels.add')}
        </button>
      </form>
      <ErrorBanner error={q.error ?? create.error ?? update.error ?? remove.error} />
    </section>
  );
}
