// The templates API as the templates pages use it: shapes and TanStack Query hooks.
import { useQuery } from '@tanstack/react-query';
import { api, seg } from '../../api.ts';
import { useMe } from '../../session.tsx';

export interface TemplateFolder {
  id: string;
  name: string;
  templateCount: number;
}

export interface TemplateSummary {
  id: string;
  name: string;
  module: string;
  folderId: string | null;
  folderName: string | null;
  currentVersion: number;
  subject: string;
  updatedByName: string | null;
  updatedAt: string;
}

export interface TemplateVersion {
  version: number;
  subject: string;
  htmlSource: string;
  html: string;
  text: string;
  textGenerated: boolean;
  fromAddress: string | null;
  fromName: string | null;
  replyTo: string | null;
  comment: string | null;
  author: { id: string; name: string | null } | null;
  createdAt: string;
}

export interface TemplateDetail {
  id: string;
  name: string;
  module: string;
  folderId: string | null;
  currentVersion: number;
  canManage: boolean;
  current: TemplateVersion;
}

export interface VersionHeader {
  version: number;
  subject: string;
  comment: string | null;
  author: { id: string; name: string | null } | null;
  createdAt: string;
  current: boolean;
}

export interface Rendered {
  subject: string;
  html: string | null;
  text: string;
}

export interface MergeField {
  path: string;
  label: string;
  group: string;
}

export const templateKeys = {
  folders: ['template-folders'] as const,
  list: (f: object) => ['templates', f] as const,
  all: ['templates'] as const,
  one: (id: string) => ['template', id] as const,
  versions: (id: string) => ['template-versions', id] as const,
  version: (id: string, v: number) => ['template-version', id, v] as const,
  fields: (module: string) => ['merge-fields', module] as const,
};

/** Whether the signed-in user may create, edit and delete templates. */
export function useCanManageTemplates(): boolean {
  const me = useMe();
  return me.profile.isAdmin || me.profile.permissions.manage_templates === true;
}

export const useFolders = () =>
  useQuery({
    queryKey: templateKeys.folders,
    queryFn: () => api.get<TemplateFolder[]>('/api/template-folders'),
  });

export function useTemplates(filter: { module: string; folderId: string; q: string }) {
  const qs = new URLSearchParams();
  if (filter.module) qs.set('module', filter.module);
  if (filter.folderId) qs.set('folderId', filter.folderId);
  if (filter.q.trim()) qs.set('q', filter.q.trim());
  return useQuery({
    queryKey: templateKeys.list(filter),
    queryFn: () => api.get<TemplateSummary[]>(`/api/templates?${qs}`),
  });
}

export const useTemplate = (id: string | undefined) =>
  useQuery({
    queryKey: templateKeys.one(id ?? ''),
    queryFn: () => api.get<TemplateDetail>(`/api/templates/${seg(id!)}`),
    enabled: !!id,
  });

export const useVersions = (id: string | undefined) =>
  useQuery({
    queryKey: templateKeys.versions(id ?? ''),
    queryFn: () => api.get<VersionHeader[]>(`/api/templates/${seg(id!)}/versions`),
    enabled: !!id,
  });

export const useVersion = (id: string | undefined, version: number | null) =>
  useQuery({
    queryKey: templateKeys.version(id ?? '', version ?? 0),
    queryFn: () => api.get<TemplateVersion>(`/api/templates/${seg(id!)}/versions/${version}`),
    enabled: !!id && !!version,
    staleTime: Number.POSITIVE_INFINITY, // versions never change
  });

export const useMergeFields = (module: string) =>
  useQuery({
    queryKey: templateKeys.fields(module),
    queryFn: () =>
      api.get<{ recordKey: string; fields: MergeField[] }>(
        `/api/templates/merge-fields?module=${encodeURIComponent(module)}`,
      ),
    enabled: !!module,
    staleTime: 60_000,
  });
