import type { ModulePermission, Permissions } from '../db/schema.ts';
import { AppError } from '../errors.ts';

/** Who is calling: resolved from a session or an API key, and passed to every service. */
export interface Actor {
  orgId: string;
  userId: string;
  isAdmin: boolean;
  permissions: Permissions;
  timeZone: string;
  locale: string;
}

export type ModuleAction = keyof ModulePermission;

export function can(actor: Actor, module: string, action: ModuleAction): boolean {
  if (actor.isAdmin) return true;
  return actor.permissions.modules?.[module]?.[action] === true;
}

export function requireModule(actor: Actor, module: string, action: ModuleAction): void {
  if (!can(actor, module, action))
    throw new AppError('forbidden', `Your profile does not allow "${action.replace('_', ' ')}" on ${module}`);
}

export function requireAdmin(actor: Actor): void {
  if (!actor.isAdmin) throw new AppError('forbidden', 'Only administrators can do this');
}

export function moduleAccess(actor: Actor, module: string) {
  return {
    read: can(actor, module, 'read'),
    create: can(actor, module, 'create'),
    edit: can(actor, module, 'edit'),
    delete: can(actor, module, 'delete'),
    massEmail: can(actor, module, 'mass_email'),
  };
}

export const fullAccess: ModulePermission = {
  read: true,
  create: true,
  edit: true,
  delete: true,
  mass_email: true,
};
