import { z } from 'zod';

// The only place that reads process.env: every setting is a PARLEY_* variable, validated once.
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

export const configSchema = z.object({
  PARLEY_PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  PARLEY_HOST: z.string().default('127.0.0.1'),
  PARLEY_PUBLIC_URL: z.url().optional(),
  PARLEY_DATA_DIR: z.string().optional(),
  PARLEY_DATABASE_URL: z.string().optional(),
  PARLEY_DB_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  PARLEY_EMBEDDED_PG_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  PARLEY_SECRET: z.string().min(32, 'PARLEY_SECRET must be at least 32 characters').optional(),
  PARLEY_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PARLEY_TRUST_PROXY: z.string().optional(),
  PARLEY_SECURE_COOKIES: bool.optional(),
  PARLEY_SESSION_DAYS: z.coerce.number().int().min(1).max(365).default(14),
  PARLEY_DEMO_PASSWORD: z.string().min(8).default('parley-demo'),
  // How long a message keeps being retried after temporary failures before it fails (F3.8).
  PARLEY_DELIVERY_LIFETIME_HOURS: z.coerce
    .number()
    .min(0.01)
    .max(24 * 30)
    .default(96),
  // The inbound SMTP listener for bounces to VERP return paths; off unless a port is set.
  PARLEY_BOUNCE_SMTP_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  PARLEY_BOUNCE_SMTP_HOST: z.string().default('0.0.0.0'),
  // The domain of BCC dropbox addresses (dropbox-<token>@this): its MX is the inbound listener.
  PARLEY_INBOUND_DOMAIN: z
    .string()
    .regex(/^[a-z0-9.-]+$/i)
    .optional(),
  // Lets outgoing webhooks reach loopback/private addresses and plain http (tests, closed networks).
  PARLEY_WEBHOOKS_ALLOW_PRIVATE: bool.optional(),
  // Seconds between syncs of a connected mailbox (also the full re-sync of one held in IMAP IDLE).
  PARLEY_MAILBOX_POLL_SECONDS: z.coerce.number().int().min(10).max(86_400).default(120),
});

export type RawConfig = z.infer<typeof configSchema>;

export interface Config {
  port: number;
  host: string;
  publicUrl: string;
  dataDir: string;
  databaseUrl?: string;
  dbPoolSize: number;
  embeddedPgPort: number;
  secret?: string;
  logLevel: RawConfig['PARLEY_LOG_LEVEL'];
  trustProxy?: string;
  secureCookies: boolean;
  sessionDays: number;
  demoPassword: string;
  deliveryLifetimeHours: number;
  bounceSmtpPort?: number;
  bounceSmtpHost: string;
  inboundDomain: string;
  webhooksAllowPrivate: boolean;
  mailboxPollSeconds: number;
}

/** The data folder when none is configured: one that both root and ordinary users can use. */
export function defaultDataDir(env: NodeJS.ProcessEnv, uid: number, home: string): string {
  // Root's home is mode 700, which the unprivileged postgres user cannot enter; /var/lib is the
  // conventional place for a service's data and is traversable by everyone.
  if (uid === 0) return '/var/lib/parley';
  const xdg = env.XDG_DATA_HOME;
  return `${xdg && xdg.length > 0 ? xdg : `${home}/.local/share`}/parley`;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  const uid = typeof process.getuid === 'function' ? process.getuid() : 1000;
  const home = env.HOME ?? '/tmp';
  const port = overrides.port ?? c.PARLEY_PORT;
  const publicUrl = (overrides.publicUrl ?? c.PARLEY_PUBLIC_URL ?? `http://localhost:${port}`).replace(
    /\/$/,
    '',
  );
  return {
    port,
    host: c.PARLEY_HOST,
    publicUrl,
    dataDir: c.PARLEY_DATA_DIR ?? defaultDataDir(env, uid, home),
    databaseUrl: c.PARLEY_DATABASE_URL,
    dbPoolSize: c.PARLEY_DB_POOL_SIZE,
    embeddedPgPort: c.PARLEY_EMBEDDED_PG_PORT,
    secret: c.PARLEY_SECRET,
    logLevel: c.PARLEY_LOG_LEVEL,
    trustProxy: c.PARLEY_TRUST_PROXY,
    secureCookies: c.PARLEY_SECURE_COOKIES ?? publicUrl.startsWith('https://'),
    sessionDays: c.PARLEY_SESSION_DAYS,
    demoPassword: c.PARLEY_DEMO_PASSWORD,
    deliveryLifetimeHours: c.PARLEY_DELIVERY_LIFETIME_HOURS,
    bounceSmtpPort: c.PARLEY_BOUNCE_SMTP_PORT,
    bounceSmtpHost: c.PARLEY_BOUNCE_SMTP_HOST,
    inboundDomain: (c.PARLEY_INBOUND_DOMAIN ?? new URL(publicUrl).hostname).toLowerCase(),
    webhooksAllowPrivate: c.PARLEY_WEBHOOKS_ALLOW_PRIVATE ?? false,
    mailboxPollSeconds: c.PARLEY_MAILBOX_POLL_SECONDS,
    ...overrides,
  };
}
