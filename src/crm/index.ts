// The CRM core's public surface: other modules and the HTTP layer import only from here.
export * from './access.ts';
export * from './auth.service.ts';
export { builtinModules, DEAL_STAGES, displayName, LEAD_STATUSES } from './catalog.ts';
export { type CriteriaContext, compileCriteria, validateCriteria } from './criteria/index.ts';
export { csvSafe } from './csv.ts';
export * from './import-export.service.ts';
export * from './metadata.service.ts';
export * from './orgs.service.ts';
export * from './profiles.service.ts';
export * from './records.service.ts';
export * from './users.service.ts';
export type { FieldMeta } from './values.ts';
export * from './views.service.ts';
