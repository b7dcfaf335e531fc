// Templates: the public surface. Other modules (sending, HTTP) import only from here.
//
// Sending code compiles a version once and renders it per recipient:
//
//   import { buildMergeContexts, compileTemplate, renderCompiled } from '../templates/index.ts';
//   const compiled = compileTemplate({ subject, html, text });        // a template_versions row
//   const contexts = await buildMergeContexts(deps, orgId, {          // a fixed number of queries
//     moduleApiName: 'leads', recordIds, senderUserId });
//   for (const id of recordIds) {
//     const { subject, html, text } = await renderCompiled(compiled, contexts.get(id)!);
//     // or renderCompiledSync(compiled, context) in a loop that cannot await
//   }
//
// Or, for one record on behalf of a user (checks the user's access; the user is the sender):
//
//   const r = await renderForRecord(deps, actor, { templateId, version?, recordId });
//   // → { subject, html, text, templateId, templateVersion, from?: { address, name }, replyTo? }
//
// A message stores r.templateId and r.templateVersion (F2.2). html is HTML-escaped merge output
// (outputEscape 'escape'); subject and text are not escaped; the subject is one line (line breaks
// and control characters from merge values become spaces). Rendering errors (a loop past the
// limits, a merge field missing from a hand-made context) throw AppError('validation_failed').
//
// The merge context: { <record key>: {...fields, <related>: {...} | null}, owner, sender, org }.
// The record key is lead / contact / account / deal / task / call, a custom module's api_name
// (mergeKey). Fields by api_name, empty values null; a lookup field holds the related record's
// name and the related record itself sits under the lookup's name without _id (contact.account,
// deal.account, deal.contact); every record has `name` (its display name). owner and sender:
// { name, first_name, last_name, email }; org: { name }. Templates are checked against exactly
// this at save time, so an unknown field is a save error, never a blank at send time.
//
// Engines for the fast path (src/sending/fast-path.ts): textEngine (subject, text) and htmlEngine
// (escaping) carry the sandbox options (LIQUID_OPTIONS: strict, own properties only, no files,
// render/memory limits).
export { type PreparedVersion, prepareVersion, type VersionInput } from './content.ts';
export {
  type CompiledTemplate,
  cleanSubject,
  compileTemplate,
  htmlEngine,
  LIQUID_OPTIONS,
  type MergeContext,
  type RenderedTemplate,
  renderCompiled,
  renderCompiledSync,
  TEMPLATE_LIMITS,
  type TemplateSource,
  textEngine,
} from './engine.ts';
export { buildMergeContext, buildMergeContexts, type MergeTarget, sampleContext } from './merge-context.ts';
export {
  listMergeFields,
  type MergeSchema,
  mergeKey,
  mergeSchema,
  unknownMergeFields,
} from './merge-schema.ts';
export {
  canManageTemplates,
  createFolder,
  createTemplate,
  deleteFolder,
  deleteTemplate,
  getTemplate,
  getVersion,
  listFolders,
  listTemplates,
  listVersions,
  mergeFields,
  moveTemplate,
  previewDraft,
  type RenderedForRecord,
  renameFolder,
  renderForRecord,
  type TemplateDetail,
  type TemplateFolder,
  type TemplateInput,
  type TemplateSummary,
  type TemplateVersion,
  updateTemplate,
} from './templates.service.ts';
