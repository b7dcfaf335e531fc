import { useQuery } from '@tanstack/react-query';
import { useEffect, useId, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, seg } from '../api.ts';
import type { LookupRef } from '../types.ts';

function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const h = setTimeout(() => setV(value), ms);
    return () => clearTimeout(h);
  }, [value, ms]);
  return v;
}

/** Search-as-you-type picker of one record of `module` (a lookup field's value). */
export function LookupInput({
  id,
  module,
  value,
  onChange,
  invalid,
  describedBy,
  placeholder,
}: {
  id: string;
  module: string;
  value: LookupRef | null;
  onChange: (v: LookupRef | null) => void;
  invalid?: boolean;
  describedBy?: string;
  placeholder?: string;
}) {
  const { t } = useTranslation();
  const listId = useId();
  const [open, setOpen] = useState(false);
  const [q, setQ] = useState('');
  const [active, setActive] = useState(0);
  const term = useDebounced(q, 200);
  const input = useRef<HTMLInputElement>(null);
  const results = useQuery({
    queryKey: ['search', module, term],
    queryFn: () =>
      api.get<{ records: LookupRef[] }>(
        `/api/modules/${seg(module)}/records/search?q=${encodeURIComponent(term)}`,
      ),
    enabled: open,
    staleTime: 10_000,
  });
  const options = results.data?.records ?? [];

  const choose = (r: LookupRef) => {
    onChange(r);
    setOpen(false);
    setQ('');
  };

  return (
    <div className="lookup">
      <input
        ref={input}
        id={id}
        type="text"
        role="combobox"
        autoComplete="off"
        aria-autocomplete="list"
        aria-expanded={open}
        aria-controls={listId}
        aria-invalid={invalid || undefined}
        aria-describedby={describedBy}
        aria-activedescendant={open && options[active] ? `${listId}-${active}` : undefined}
        placeholder={value?.displayName ?? placeholder ?? t('lookup.search')}
        value={open ? q : (value?.displayName ?? '')}
        onFocus={() => {
          setOpen(true);
          setQ('');
          setActive(0);
        }}
        onBlur={() => setOpen(false)}
        onChange={(e) => {
          setQ(e.target.value);
          setActive(0);
          setOpen(true);
        }}
        onKeyDown={(e) => {
          if (e.key === 'ArrowDown') {
            e.preventDefault();
            setOpen(true);
            setActive((a) => Math.min(a + 1, Math.max(options.length - 1, 0)));
          } else if (e.key === 'ArrowUp') {
            e.preventDefault();
            setActive((a) => Math.max(a - 1, 0));
          } else if (e.key === 'Enter' && open) {
            e.preventDefault();
            if (options[active]) choose(options[active]);
          } else if (e.key === 'Escape') {
            setOpen(false);
          }
        }}
      />
      {value && !open && (
        <button
          type="button"
          className="lookup-clear"
          aria-label={t('lookup.clear')}
          onClick={() => {
            onChange(null);
            input.current?.focus();
          }}
        >
          ×
        </button>
      )}
      {open && (
        <div className="lookup-list" role="listbox" id={listId}>
          {results.isLoading && <div className="lookup-empty">{t('common.loading')}</div>}
          {!results.isLoading && options.length === 0 && (
            <div className="lookup-empty">{t('lookup.noMatches')}</div>
          )}
          {options.map((r, i) => (
            <div
              key={r.id}
              tabIndex={-1}
              id={`${listId}-${i}`}
              role="option"
              aria-selected={i === active}
              className={i === active ? 'active' : undefined}
              onMouseDown={(e) => {
                e.preventDefault(); // keep the focus so that onBlur does not close before the choice
                choose(r);
              }}
              onMouseEnter={() => setActive(i)}
            >
              {r.displayName || t('common.untitled')}
            </div>
          ))}
        </div>
      )}
    </div>
  );
}
