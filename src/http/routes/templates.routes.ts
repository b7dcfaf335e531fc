import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Deps } from '../../deps.ts';
import {
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
  renameFolder,
  renderForRecord,
  TEMPLATE_LIMITS,
  updateTemplate,
} from '../../templates/index.ts';
import { actorOf } from '../auth.ts';

// Email templates (F2.1) and their versions (F2.2). Bodies are Liquid: see src/templates/index.ts.
const idParams = z.object({ id: z.uuid() });
const optionalAddress = z.string().max(512).nullable().optional();
const content = {
  subject: z.string().max(TEMPLATE_LIMITS.subject).describe('Liquid, e.g. "Hello {{ lead.first_name }}"'),
  htmlSource: z
    .string()
    .max(TEMPLATE_LIMITS.html)
    .describe('The HTML as written (may hold <style>); CSS is inlined at save time. "" for text only.'),
  text: z
    .string()
    .max(TEMPLATE_LIMITS.text)
    .nullable()
    .optional()
    .describe('Plain-text body; generated from the HTML when empty.'),
  fromAddress: optionalAddress.describe("The template's own From address (optional)."),
  fromName: z.string().max(200).nullable().optional(),
  replyTo: optionalAddress.describe("The template's own Reply-To address (optional)."),
};
const comment = z.string().max(1000).nullable().optional().describe('Why this version was saved.');
const name = z.string().max(200);
const folderId = z.uuid().nullable().optional();

export function templateRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['templates'];

  // Folders
  r.get('/api/template-folders', { schema: { tags } }, async (req) => listFolders(deps, actorOf(req)));
  r.post(
    '/api/template-folders',
    { schema: { tags, body: z.object({ name: z.string().max(100) }) } },
    async (req, reply) => reply.status(201).send(await createFolder(deps, actorOf(req), req.body)),
  );
  r.patch(
    '/api/template-folders/:id',
    { schema: { tags, params: idParams, body: z.object({ name: z.string().max(100) }) } },
    async (req) => renameFolder(deps, actorOf(req), req.params.id, req.body),
  );
  r.delete('/api/template-folders/:id', { schema: { tags, params: idParams } }, async (req, reply) => {
    await deleteFolder(deps, actorOf(req), req.params.id);
    return reply.status(204).send();
  });

  // Templates
  r.get(
    '/api/templates',
    {
      schema: {
        tags,
        querystring: z.object({
          module: z.string().max(60).optional(),
          folderId: z.union([z.uuid(), z.literal('none')]).optional(),
          q: z.string().max(100).optional(),
          limit: z.coerce.number().int().min(1).max(1000).optional(),
        }),
      },
    },
    async (req) => listTemplates(deps, actorOf(req), req.query),
  );
  r.get(
    '/api/templates/merge-fields',
    { schema: { tags, querystring: z.object({ module: z.string().max(60) }) } },
    async (req) => mergeFields(deps, actorOf(req), req.query.module),
  );
  r.post(
    '/api/templates/preview',
    {
      schema: {
        tags,
        description:
          'Checks unsaved template content as a save would, and merges it with a record (or samples).',
        body: z
          .object({ module: z.string().max(60), recordId: z.uuid().nullable().optional(), ...content })
          .strict(),
      },
    },
    async (req) => previewDraft(deps, actorOf(req), req.body),
  );
  r.post(
    '/api/templates',
    {
      schema: {
        tags,
        body: z.object({ name, module: z.string().max(60), folderId, comment, ...content }).strict(),
      },
    },
    async (req, reply) => reply.status(201).send(await createTemplate(deps, actorOf(req), req.body)),
  );
  r.get('/api/templates/:id', { schema: { tags, params: idParams } }, async (req) =>
    getTemplate(deps, actorOf(req), req.params.id),
  );
  r.put(
    '/api/templates/:id',
    {
      schema: {
        tags,
        description: 'Saves a change: a new version with this content, its author and comment.',
        params: idParams,
        body: z
          .object({
            name: name.optional(),
            folderId,
            comment,
            baseVersion: z
              .number()
              .int()
              .min(1)
              .optional()
              .describe('Refuse (409) if another version was saved since.'),
            ...content,
          })
          .strict(),
      },
    },
    async (req) => updateTemplate(deps, actorOf(req), req.params.id, req.body),
  );
  r.patch(
    '/api/templates/:id',
    {
      schema: {
        tags,
        description: 'Renames a template or moves it to another folder (no new version).',
        params: idParams,
        body: z.object({ name: name.optional(), folderId }),
      },
    },
    async (req) => moveTemplate(deps, actorOf(req), req.params.id, req.body),
  );
  r.delete('/api/templates/:id', { schema: { tags, params: idParams } }, async (req, reply) => {
    await deleteTemplate(deps, actorOf(req), req.params.id);
    return reply.status(204).send();
  });

  // Versions and previews
  r.get('/api/templates/:id/versions', { schema: { tags, params: idParams } }, async (req) =>
    listVersions(deps, actorOf(req), req.params.id),
  );
  r.get(
    '/api/templates/:id/versions/:version',
    { schema: { tags, params: z.object({ id: z.uuid(), version: z.coerce.number().int().min(1) }) } },
    async (req) => getVersion(deps, actorOf(req), req.params.id, req.params.version),
  );
  r.post(
    '/api/templates/:id/preview',
    {
      schema: {
        tags,
        description: 'Merges a version (default: the current one) with a record; the caller is the sender.',
        params: idParams,
        body: z.object({ recordId: z.uuid(), version: z.number().int().min(1).optional() }).strict(),
      },
    },
    async (req) =>
      renderForRecord(deps, actorOf(req), {
        templateId: req.params.id,
        recordId: req.body.recordId,
        version: req.body.version,
      }),
  );
}
