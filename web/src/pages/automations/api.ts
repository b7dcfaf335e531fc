// The automations API (admins only) as the Automations pages use it: shapes and query hooks.
import { useQuery } from '@tanstack/react-query';
import { api, seg } from '../../api.ts';
import type { Criteria } from '../../types.ts';
import type { Choice } from '../massmail/compose.tsx';

export type Kind = 'autoresponder' | 'workflow';

interface RuleBase {
  id: string;
  name: string;
  module: string;
  moduleLabel: string;
  templateId: string;
  templateName: string;
  templateDeleted: boolean;
  criteria: Criteria | null;
  from: Choice;
  active: boolean;
  createdBy: string;
  creatorName: string | null;
  createdAt: string;
  updatedAt: string;
}
export interface Autoresponder extends RuleBase {
  /** 'created_at' or the api name of a date or date-time field. */
  anchorField: string;
  days: number;
}
export interface WorkflowRule extends RuleBase {
  onCreate: boolean;
  onEdit: boolean;
  toRecord: boolean;
  toUserIds: string[];
}
export type Rule = Autoresponder | WorkflowRule;

export const automationKeys = {
  all: ['automations'] as const,
  one: (kind: Kind, id: string) => ['automations', kind, id] as const,
};

export const useAutomations = () =>
  useQuery({
    queryKey: automationKeys.all,
    queryFn: () =>
      api.get<{ autoresponders: Autoresponder[]; workflowRules: WorkflowRule[] }>('/api/automations'),
  });

export const useAutomation = (kind: Kind, id: string | undefined) =>
  useQuery({
    queryKey: automationKeys.one(kind, id ?? ''),
    queryFn: () => api.get<Rule>(`/api/automations/${seg(kind)}/${seg(id!)}`),
    enabled: !!id,
  });

/** Where a rule of this kind is created (POST) or replaced (PUT, with its id). */
export const savePath = (kind: Kind, id?: string) =>
  `/api/automations/${kind === 'autoresponder' ? 'autoresponders' : 'workflow-rules'}${id ? `/${seg(id)}` : ''}`;
