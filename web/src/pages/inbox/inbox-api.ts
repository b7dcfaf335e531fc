// SalesInbox shapes and query keys (src/http/routes/inbox.routes.ts).
import type { Criteria } from '../../types.ts';

export type LabelColour =
  | 'gray'
  | 'red'
  | 'orange'
  | 'yellow'
  | 'green'
  | 'teal'
  | 'blue'
  | 'purple'
  | 'pink';
export interface Label {
  id: string;
  name: string;
  colour: LabelColour;
}
export interface Watch {
  id: string;
  state: 'waiting' | 'replied' | 'reminded' | 'cancelled';
  dueAt: string;
  repliedAt: string | null;
  remindedAt: string | null;
}
export interface InboxItem {
  id: string;
  subject: string;
  snippet: string;
  from: { address: string; name: string | null } | null;
  to: { address: string; name?: string | null }[];
  cc: { address: string; name?: string | null }[];
  date: string;
  hasAttachments: boolean;
  unread: boolean;
  direction: 'in' | 'out';
  folders: string[];
  labels: Label[];
  records: { id: string; module: string; moduleLabel: string; displayName: string; role: string }[];
  watch: Watch | null;
}
export interface SalesCondition {
  module: string;
  criteria?: Criteria | null;
  role?: 'from' | 'to' | 'any';
  related?: { module: string; field: string; criteria: Criteria | null };
}
export interface InboxFilter {
  tab: 'crm' | 'other';
  from?: string;
  to?: string;
  subject?: string;
  hasAttachment?: boolean;
  unread?: boolean;
  direction?: 'in' | 'out';
  after?: string;
  before?: string;
  labelIds?: string[];
  sales?: SalesCondition[];
}
export interface LeadRule {
  id: string;
  scope: 'user' | 'org';
  module: 'leads' | 'contacts';
  match: 'domain' | 'keyword' | 'folder';
  values: string[];
  active: boolean;
}
export interface Notification {
  id: string;
  kind: string;
  title: string;
  body: string;
  link: string | null;
  createdAt: string;
  readAt: string | null;
}

export const inboxKeys = {
  all: ['inbox'] as const,
  list: (f: InboxFilter) => ['inbox', 'list', f] as const,
  mail: (id: string) => ['inbox', 'mail', id] as const,
  labels: ['inbox-labels'] as const,
  rules: ['inbox-lead-rules'] as const,
  watches: (messageId: string) => ['inbox-watches', messageId] as const,
  notifications: ['notifications'] as const,
};

/** A notification's link, only when it is a path inside the app. */
export const appPath = (link: string | null) => (link && /^\/(?!\/)/.test(link) ? link : null);
