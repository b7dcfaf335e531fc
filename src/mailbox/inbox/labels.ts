import { z } from 'zod';
import type { Actor } from '../../crm/index.ts';
import type { LabelColour } from '../../db/schema.ts';
import type { Deps } from '../../deps.ts';
import { AppError, invalid, notFound } from '../../errors.ts';
import { mineSql } from './inbox.service.ts';

// A user's coloured labels on their own mail; several per email, seen only by that user.

export const LABEL_COLOURS: LabelColour[] = [
  'gray',
  'red',
  'orange',
  'yellow',
  'green',
  'teal',
  'blue',
  'purple',
  'pink',
];
const MAX_LABELS = 100;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const labelInput = z
  .object({
    name: z.string().trim().min(1, { error: 'a label needs a name' }).max(40),
    colour: z.enum(LABEL_COLOURS as [LabelColour, ...LabelColour[]], {
      error: `colour must be one of ${LABEL_COLOURS.join(', ')}`,
    }),
  })
  .strict();

const isUniqueViolation = (e: unknown) => (e as { code?: string }).code === '23505';

export async function listLabels(deps: Deps, actor: Actor) {
  return deps.db
    .selectFrom('mail_labels')
    .select(['id', 'name', 'colour'])
    .where('org_id', '=', actor.orgId)
    .where('user_id', '=', actor.userId)
    .orderBy('name')
    .execute();
}

export async function createLabel(deps: Deps, actor: Actor, input: z.infer<typeof labelInput>) {
  const n = await deps.db
    .selectFrom('mail_labels')
    .select((e) => e.fn.countAll<number>().as('n'))
    .where('user_id', '=', actor.userId)
    .executeTakeFirstOrThrow();
  if (Number(n.n) >= MAX_LABELS) throw new AppError('limit_exceeded', `At most ${MAX_LABELS} labels`);
  try {
    return await deps.db
      .insertInto('mail_labels')
      .values({ org_id: actor.orgId, user_id: actor.userId, name: input.name, colour: input.colour })
      .returning(['id', 'name', 'colour'])
      .executeTakeFirstOrThrow();
  } catch (e) {
    if (isUniqueViolation(e)) throw new AppError('conflict', `You already have a label "${input.name}"`);
    throw e;
  }
}

export async function updateLabel(
  deps: Deps,
  actor: Actor,
  id: string,
  input: Partial<z.infer<typeof labelInput>>,
) {
  if (!UUID.test(id)) throw notFound('Label');
  if (input.name === undefined && input.colour === undefined) throw invalid('Nothing to change');
  try {
    const r = await deps.db
      .updateTable('mail_labels')
      .set({ ...(input.name ? { name: input.name } : {}), ...(input.colour ? { colour: input.colour } : {}) })
      .where('id', '=', id)
      .where('org_id', '=', actor.orgId)
      .where('user_id', '=', actor.userId)
      .returning(['id', 'name', 'colour'])
      .executeTakeFirst();
    if (!r) throw notFound('Label');
    return r;
  } catch (e) {
    if (isUniqueViolation(e)) throw new AppError('conflict', `You already have a label "${input.name}"`);
    throw e;
  }
}

export async function deleteLabel(deps: Deps, actor: Actor, id: string) {
  if (!UUID.test(id)) throw notFound('Label');
  const r = await deps.db
    .deleteFrom('mail_labels')
    .where('id', '=', id)
    .where('org_id', '=', actor.orgId)
    .where('user_id', '=', actor.userId)
    .executeTakeFirst();
  if (!r.numDeletedRows) throw notFound('Label');
}

/** Adds or removes labels on emails: only the user's own labels, only on mail in their mailbox. */
export async function setLabels(
  deps: Deps,
  actor: Actor,
  input: { mailIds: string[]; add?: string[]; remove?: string[] },
) {
  const ids = [...input.mailIds, ...(input.add ?? []), ...(input.remove ?? [])];
  if (!input.mailIds.length || ids.some((x) => !UUID.test(x)))
    throw invalid('mailIds and labels must be ids');
  const labelIds = [...new Set([...(input.add ?? []), ...(input.remove ?? [])])];
  if (labelIds.length) {
    const own = await deps.db
      .selectFrom('mail_labels')
      .select('id')
      .where('org_id', '=', actor.orgId)
      .where('user_id', '=', actor.userId)
      .where('id', 'in', labelIds)
      .execute();
    if (own.length !== labelIds.length) throw notFound('Label');
  }
  const mails = await deps.db
    .selectFrom('mail_messages as m')
    .select('m.id')
    .where('m.org_id', '=', actor.orgId)
    .where('m.id', 'in', input.mailIds)
    .where(mineSql(actor))
    .execute();
  if (mails.length !== new Set(input.mailIds).size) throw notFound('Email');
  await deps.db.transaction().execute(async (trx) => {
    if (input.remove?.length)
      await trx
        .deleteFrom('mail_label_assignments')
        .where('user_id', '=', actor.userId)
        .where('label_id', 'in', input.remove)
        .where('mail_id', 'in', input.mailIds)
        .execute();
    if (input.add?.length)
      await trx
        .insertInto('mail_label_assignments')
        .values(
          input.add.flatMap((label_id) =>
            mails.map((m) => ({ label_id, mail_id: m.id, org_id: actor.orgId, user_id: actor.userId })),
          ),
        )
        .onConflict((c) => c.doNothing())
        .execute();
  });
}
