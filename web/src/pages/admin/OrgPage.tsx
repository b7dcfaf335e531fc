import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError, api } from '../../api.ts';
import { ErrorBanner, FormRow, Loading, Notice, PageHeader } from '../../components/ui.tsx';
import { keys, useOrg } from '../../queries.ts';
import type { Org } from '../../types.ts';
import { timeZones } from '../SettingsPages.tsx';

const CURRENCIES = ['USD', 'EUR', 'GBP', 'BRL', 'CNY', 'JPY', 'INR', 'CAD', 'AUD', 'CHF'];

export function OrgPage() {
  const org = useOrg();
  if (org.error) return <ErrorBanner error={org.error} />;
  if (!org.data) return <Loading />;
  return <OrgForm org={org.data} />;
}

function OrgForm({ org }: { org: Org }) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const [name, setName] = useState(org.name);
  const [timeZone, setTimeZone] = useState(org.timeZone);
  const [currency, setCurrency] = useState(org.currency);
  const save = useMutation({
    mutationFn: () => api.patch<Org>('/api/org', { name, timeZone, currency }),
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: keys.org });
      await qc.invalidateQueries({ queryKey: keys.me });
    },
  });
  const errs = save.error instanceof ApiError ? save.error.fieldErrors() : {};
  const currencies = CURRENCIES.includes(org.currency) ? CURRENCIES : [org.currency, ...CURRENCIES];
  return (
    <div>
      <PageHeader title={t('org.title')} sub={t('org.edition', { edition: org.edition })} />
      {save.isSuccess && <Notice>{t('settings.saved')}</Notice>}
      <form
        className="card"
        aria-label={t('org.title')}
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate();
        }}
      >
        <ErrorBanner error={save.error} />
        <div className="form-grid">
          <FormRow id="org-name" label={t('org.name')} error={errs.name}>
            <input id="org-name" type="text" value={name} onChange={(e) => setName(e.target.value)} />
          </FormRow>
          <FormRow id="org-tz" label={t('org.timeZone')} error={errs.timeZone}>
            <select id="org-tz" value={timeZone} onChange={(e) => setTimeZone(e.target.value)}>
              {timeZones(org.timeZone).map((z) => (
                <option key={z} value={z}>
                  {z}
                </option>
              ))}
            </select>
          </FormRow>
          <FormRow id="org-currency" label={t('org.currency')} error={errs.currency}>
            <select id="org-currency" value={currency} onChange={(e) => setCurrency(e.target.value)}>
              {currencies.map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
          </FormRow>
        </div>
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={save.isPending}>
            {t('common.save')}
          </button>
        </div>
      </form>
    </div>
  );
}
