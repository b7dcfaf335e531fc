// Module metadata built from the catalog, without a database: for the unit tests of this folder.

import type { FieldDef } from '../crm/catalog.ts';
import { builtinModules, type ModuleMeta } from '../crm/index.ts';

export function catalogModules(extra: { apiName: string; singular: string; fields: FieldDef[] }[] = []) {
  const all = [...builtinModules, ...extra.map((m) => ({ ...m, plural: `${m.singular}s` }))];
  return new Map<string, ModuleMeta>(
    all.map((m, i) => [
      m.apiName,
      {
        id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        apiName: m.apiName,
        singularLabel: m.singular,
        pluralLabel: m.plural,
        isCustom: i >= builtinModules.length,
        fields: m.fields.map((f, j) => ({
          id: `${i}-${j}`,
          apiName: f.apiName,
          label: f.label,
          type: f.type,
          required: !!f.required,
          options: f.options ?? {},
          isCustom: false,
          position: j,
          system: false,
        })),
      },
    ]),
  );
}
