// Shared TanStack Query hooks over the API's read endpoints.
import { useQuery } from '@tanstack/react-query';
import { api, seg } from './api.ts';
import type { ApiKey, Me, ModuleInfo, ModuleMeta, Org, Profile, User, View } from './types.ts';

export const keys = {
  me: ['me'] as const,
  modules: ['modules'] as const,
  module: (m: string) => ['module', m] as const,
  views: (m: string) => ['views', m] as const,
  records: (m: string) => ['records', m] as const,
  record: (m: string, id: string) => ['record', m, id] as const,
  users: ['users'] as const,
  profiles: ['profiles'] as const,
  apiKeys: ['api-keys'] as const,
  org: ['org'] as const,
};

export const useMeQuery = () =>
  useQuery({ queryKey: keys.me, queryFn: () => api.get<Me>('/api/me'), retry: false, staleTime: 60_000 });

// The built-in modules in the order sales people work through them; custom ones follow.
const BUILTIN_ORDER = ['leads', 'contacts', 'accounts', 'deals', 'tasks', 'calls'];
const rank = (m: ModuleInfo) => {
  const i = BUILTIN_ORDER.indexOf(m.apiName);
  return m.isCustom || i < 0 ? BUILTIN_ORDER.length : i;
};

export const useModules = () =>
  useQuery({
    queryKey: keys.modules,
    queryFn: async () => {
      const list = await api.get<ModuleInfo[]>('/api/modules');
      return list
        .map((m, i) => ({ m, i }))
        .sort((a, b) => rank(a.m) - rank(b.m) || a.i - b.i)
        .map((x) => x.m);
    },
    staleTime: 60_000,
  });

export const useModuleMeta = (module: string | undefined) =>
  useQuery({
    queryKey: keys.module(module ?? ''),
    queryFn: () => api.get<ModuleMeta>(`/api/modules/${seg(module!)}`),
    enabled: !!module,
    staleTime: 60_000,
  });

export const useViews = (module: string) =>
  useQuery({
    queryKey: keys.views(module),
    queryFn: () => api.get<View[]>(`/api/modules/${seg(module)}/views`),
  });

export const useUsers = () =>
  useQuery({ queryKey: keys.users, queryFn: () => api.get<User[]>('/api/users'), staleTime: 60_000 });

export const useProfiles = (enabled = true) =>
  useQuery({ queryKey: keys.profiles, queryFn: () => api.get<Profile[]>('/api/profiles'), enabled });

export const useApiKeys = () =>
  useQuery({ queryKey: keys.apiKeys, queryFn: () => api.get<ApiKey[]>('/api/api-keys') });

export const useOrg = () => useQuery({ queryKey: keys.org, queryFn: () => api.get<Org>('/api/org') });
