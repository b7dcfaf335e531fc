// The composition root: parses configuration, wires dependencies and starts the requested roles.
import { createReadStream, createWriteStream } from 'node:fs';
import { SingleBar } from 'cli-progress';
import { Command } from 'commander';
import { type Config, loadConfig } from './config.ts';
import * as crm from './crm/index.ts';
import { DEMO_ADMIN, ensureDemoOrg, seedLeads } from './crm/seed.ts';
import type { Deps } from './deps.ts';
import { buildApp } from './http/app.ts';
import { startWorker } from './jobs/index.ts';
import { openRuntime, type Runtime } from './runtime.ts';
import { recoverStuck } from './sending/delivery.ts';

function progressBar(label: string, total?: number) {
  const started = Date.now();
  const bar = new SingleBar({
    format: `${label} {bar} {value}${total ? '/{total}' : ''} | {rate}/s | {duration}s`,
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 2000,
    stream: process.stderr,
  });
  bar.start(total ?? 0, 0, { rate: 0 });
  return {
    update(done: number) {
      bar.update(done, { rate: Math.round(done / Math.max(0.001, (Date.now() - started) / 1000)) });
    },
    stop: () => bar.stop(),
  };
}

function config(): Config {
  try {
    return loadConfig();
  } catch (e) {
    console.error((e as Error).message);
    process.exit(2);
  }
}

async function withRuntime<T>(fn: (rt: Runtime) => Promise<T>): Promise<T> {
  const rt = await openRuntime(config());
  try {
    return await fn(rt);
  } finally {
    await rt.close();
  }
}

async function actorByEmail(deps: Deps, email: string): Promise<crm.Actor> {
  const u = await deps.db
    .selectFrom('users')
    .select('id')
    .where('email', '=', email.toLowerCase())
    .executeTakeFirst();
  if (!u) throw new Error(`No user with the email ${email}`);
  const rows = await deps.db
    .selectFrom('users')
    .innerJoin('profiles', 'profiles.id', 'users.profile_id')
    .select(['users.org_id', 'users.time_zone', 'users.locale', 'profiles.is_admin', 'profiles.permissions'])
    .where('users.id', '=', u.id)
    .executeTakeFirstOrThrow();
  return {
    orgId: rows.org_id,
    userId: u.id,
    isAdmin: rows.is_admin,
    permissions: rows.permissions,
    timeZone: rows.time_zone,
    locale: rows.locale,
  };
}

/** Runs until SIGINT/SIGTERM, then stops the roles and the embedded database cleanly. */
async function runRoles(roles: { http: boolean; worker: boolean; demo: boolean }) {
  const t0 = Date.now();
  const cfg = config();
  let rt: Runtime;
  try {
    rt = await openRuntime(cfg);
  } catch (e) {
    console.error(`Parley could not start: ${(e as Error).message}`);
    process.exit(1);
  }
  const { deps } = rt;
  const stops: (() => Promise<unknown>)[] = [];
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    deps.log.info({ signal }, 'stopping');
    for (const s of stops.reverse()) await s().catch((err) => deps.log.error({ err }, 'while stopping'));
    await rt.close();
    // A start that failed exits non-zero: process managers restart it, scripts see it.
    process.exit(signal === 'error' ? 1 : 0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  try {
    if (roles.demo) {
      const demo = await ensureDemoOrg(deps, cfg.demoPassword);
      if (demo.created) deps.log.info('demo org created');
    }
    if (roles.worker) {
      // The embedded database belongs to this process alone, and a Ctrl-C in a terminal reaches its
      // Postgres too, so sends cut off last time could not record their outcome: they are unknown now.
      if (!cfg.databaseUrl) {
        const cut = await recoverStuck(deps, 0);
        if (cut) deps.log.warn({ count: cut }, 'messages cut off by the last stop are marked unknown');
      }
      const w = await startWorker(deps, rt.url, () => stopping, { shared: !rt.embedded });
      stops.push(w.stop);
    }
    if (cfg.bounceSmtpPort !== undefined) {
      const { startBounceListener } = await import('./tracking/bounces/inbound.ts');
      const bl = await startBounceListener(deps, {
        port: cfg.bounceSmtpPort,
        host: cfg.bounceSmtpHost,
      }).catch((e: NodeJS.ErrnoException) => {
        // `serve` and `worker` on one host with the same settings: one of them receives bounces.
        if (e.code !== 'EADDRINUSE') throw e;
        deps.log.warn(
          { port: cfg.bounceSmtpPort },
          'bounce listener port in use: another process receives bounces',
        );
      });
      if (bl) {
        stops.push(bl.close);
        console.log(`Bounces are received by SMTP on ${bl.host}:${bl.port}`);
      }
    }
    if (roles.http) {
      const app = await buildApp(deps);
      await app.listen({ port: cfg.port, host: cfg.host });
      stops.push(() => app.close());
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : cfg.port;
      const url = cfg.publicUrl.replace(`:${cfg.port}`, `:${port}`);
      console.log(`\nParley is ready at ${url}  (started in ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      if (roles.demo) console.log(`Demo login: ${DEMO_ADMIN} / ${cfg.demoPassword}`);
      console.log(
        `API reference: ${url}/api/docs   Data: ${cfg.databaseUrl ? 'PARLEY_DATABASE_URL' : cfg.dataDir}`,
      );
      console.log('Press Ctrl-C to stop.\n');
    } else {
      console.log('Parley worker running. Press Ctrl-C to stop.');
    }
  } catch (e) {
    console.error(`Parley could not start: ${(e as Error).message}`);
    await shutdown('error');
  }
}

const program = new Command();
program.name('parley').description('Parley: an open-source sales CRM whose centre is email').version('0.1.0');

program
  .command('start')
  .description(
    'run everything in one process: embedded database (unless PARLEY_DATABASE_URL), API, web UI and workers; seeds the demo org on first start',
  )
  .option('--no-demo', 'do not create the demo org')
  .action((o) => runRoles({ http: true, worker: true, demo: o.demo }));

/**
 * `serve` and `worker` run beside other processes, often on other machines: a secret generated into
 * each machine's data folder would make one process's tracking links, unsubscribe and bounce
 * addresses and stored relay passwords unreadable to the others. So on a shared database they
 * insist on PARLEY_SECRET.
 */
function requireSharedSecret() {
  const c = config();
  if (c.databaseUrl && !c.secret) {
    console.error(
      'PARLEY_SECRET must be set for `parley serve` and `parley worker` on PARLEY_DATABASE_URL: every ' +
        'process signs links and encrypts passwords with it, so give them all the same value (≥ 32 characters, ' +
        'e.g. from `openssl rand -hex 32`).',
    );
    process.exit(2);
  }
}

program
  .command('serve')
  .description('run the API, web UI and tracking endpoints (stateless; run as many as you like)')
  .action(() => {
    requireSharedSecret();
    return runRoles({ http: true, worker: false, demo: false });
  });

program
  .command('worker')
  .description('run background jobs (stateless; run as many as you like)')
  .action(() => {
    requireSharedSecret();
    return runRoles({ http: false, worker: true, demo: false });
  });

program
  .command('migrate')
  .description('apply pending database migrations and exit')
  .action(() => withRuntime(async () => console.log('database is up to date')));

program
  .command('seed')
  .description('create demo data')
  .option('--demo', 'create the demo org (admin@demo.parley.local) if it does not exist', false)
  .option('--records <n>', 'also generate N leads in the demo org', (v) => Number.parseInt(v, 10), 0)
  .action((o: { demo: boolean; records: number }) =>
    withRuntime(async ({ deps }) => {
      if (!o.demo && !o.records) throw new Error('say what to seed: --demo and/or --records N');
      if (!Number.isInteger(o.records) || o.records < 0) throw new Error('--records takes a whole number');
      const demo = await ensureDemoOrg(deps, deps.config.demoPassword);
      console.log(
        demo.created ? `demo org created: ${DEMO_ADMIN} / ${deps.config.demoPassword}` : 'demo org exists',
      );
      if (o.records > 0) {
        const bar = progressBar('leads', o.records);
        const t = Date.now();
        await seedLeads(deps, demo.orgId, o.records, (d) => bar.update(d));
        bar.stop();
        console.log(`${o.records} leads in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      }
    }),
  );

program
  .command('import')
  .description('import a CSV file into a module, as a user')
  .requiredOption('--as <email>', 'the user the records are imported as (owner by default)')
  .requiredOption('--module <name>', 'module api name, e.g. leads')
  .requiredOption('--file <path>', 'CSV file with a header row')
  .option('--map <column=field...>', 'map a CSV column to a field (default: matched by name)')
  .action((o: { as: string; module: string; file: string; map?: string[] }) =>
    withRuntime(async ({ deps }) => {
      const actor = await actorByEmail(deps, o.as);
      let mapping: Record<string, string | null>;
      if (o.map?.length) {
        mapping = Object.fromEntries(
          o.map.map((m) => {
            const i = m.lastIndexOf('=');
            return [m.slice(0, i), m.slice(i + 1)];
          }),
        );
      } else {
        const head = await readHead(o.file);
        mapping = (await crm.previewImport(deps, actor, o.module, head)).suggestedMapping;
        console.error(`mapping: ${JSON.stringify(mapping)}`);
      }
      const bar = progressBar('rows');
      const r = await crm.importRecords(
        deps,
        actor,
        o.module,
        { csv: createReadStream(o.file), mapping },
        (d) => bar.update(d),
      );
      bar.stop();
      console.log(`${r.imported} imported, ${r.rejectedCount} rejected`);
      for (const x of r.rejected) console.log(`  line ${x.line}: ${x.reason}`);
      if (r.rejectedCount > r.rejected.length)
        console.log(`  … and ${r.rejectedCount - r.rejected.length} more`);
    }),
  );

program
  .command('export')
  .description('export a module (optionally a view or criteria) as CSV')
  .requiredOption('--as <email>', 'the user whose permissions apply')
  .requiredOption('--module <name>', 'module api name')
  .option('--view <id>', 'a view id')
  .option('--criteria <json>', 'criteria JSON')
  .option('--out <file>', 'write to a file (default: standard output)')
  .action((o: { as: string; module: string; view?: string; criteria?: string; out?: string }) =>
    withRuntime(async ({ deps }) => {
      const actor = await actorByEmail(deps, o.as);
      const out = o.out ? createWriteStream(o.out) : process.stdout;
      const bar = o.out ? progressBar('rows') : undefined;
      const criteria = o.criteria ? JSON.parse(o.criteria) : undefined;
      for await (const chunk of crm.exportRecords(deps, actor, o.module, { viewId: o.view, criteria }, (d) =>
        bar?.update(d),
      )) {
        if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      }
      bar?.stop();
      if (o.out) await new Promise((r) => (out as ReturnType<typeof createWriteStream>).end(r));
    }),
  );

async function readHead(file: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of createReadStream(file, { end: 65_535 })) {
    chunks.push(c as Buffer);
    size += (c as Buffer).length;
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

// The per-edition limits table (F3.7) is global, so only the operator changes it, from here.
const count = (v: string) => {
  if (v === 'none') return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`not a whole number: ${v}`);
  return n;
};
const limits = program.command('limits').description('show or change the daily sending limits per edition');
limits
  .command('show', { isDefault: true })
  .description('print the limits table')
  .action(() =>
    withRuntime(async ({ deps }) => {
      console.table(
        await deps.db.selectFrom('edition_limits').selectAll().orderBy('individual_per_user').execute(),
      );
    }),
  );
limits
  .command('set <edition>')
  .description("change one edition's limits")
  .option('--individual-per-user <n>', 'individual emails a day per active confirmed user', count)
  .option('--individual-user-cap <n|none>', 'up to this many users the per-user rule applies', count)
  .option('--individual-flat <n|none>', 'the flat daily limit above the user cap', count)
  .option('--mass-daily <n>', 'mass emails a day (0: no mass email in this edition)', count)
  .option('--mass-addon-max <n>', 'the most an add-on can raise the mass limit to', count)
  .option('--followups <n>', 'follow-ups per mass email', count)
  .action((edition: string, o: Record<string, number | null | undefined>) =>
    withRuntime(async ({ deps }) => {
      const set: Record<string, number | null> = {};
      const map: Record<string, string> = {
        individualPerUser: 'individual_per_user',
        individualUserCap: 'individual_user_cap',
        individualFlat: 'individual_flat_over_cap',
        massDaily: 'mass_daily',
        massAddonMax: 'mass_addon_max',
        followups: 'followups_per_mass',
      };
      for (const [k, col] of Object.entries(map)) if (o[k] !== undefined) set[col] = o[k] ?? null;
      if (!Object.keys(set).length) throw new Error('say what to change, e.g. --mass-daily 500');
      const r = await deps.db
        .updateTable('edition_limits')
        .set({ ...set, updated_at: new Date() })
        .where('edition', '=', edition as 'free')
        .executeTakeFirst();
      if (!r.numUpdatedRows)
        throw new Error(`no edition "${edition}" (free, standard, professional, enterprise, ultimate)`);
      console.table(
        await deps.db
          .selectFrom('edition_limits')
          .selectAll()
          .where('edition', '=', edition as 'free')
          .execute(),
      );
    }),
  );
limits
  .command('addon <org-id> <n>')
  .description(
    "set an org's mass email add-on (raises its daily mass limit, up to the edition's add-on maximum)",
  )
  .action((orgId: string, n: string) =>
    withRuntime(async ({ deps }) => {
      const r = await deps.db
        .updateTable('orgs')
        .set({ mass_email_addon: count(n) ?? 0 })
        .where('id', '=', orgId)
        .executeTakeFirst();
      if (!r.numUpdatedRows) throw new Error(`no org ${orgId}`);
      console.log(`org ${orgId}: mass email add-on ${n}`);
    }),
  );

// Operators check a stored or forwarded bounce with the same classifier the app uses. No database.
program
  .command('bounces')
  .description('bounce tools')
  .command('classify <files...>')
  .description('print one JSON line per failed recipient of each bounce (or one line if it is not a bounce)')
  .action(async (files: string[]) => {
    const { readFile } = await import('node:fs/promises');
    const { classifyBounce } = await import('./tracking/bounces/classify.ts');
    for (const file of files) {
      let raw: Buffer;
      try {
        raw = await readFile(file);
      } catch (e) {
        console.log(JSON.stringify({ file, bounce: false, error: (e as Error).message }));
        continue;
      }
      const r = await classifyBounce(raw);
      if (!r.bounce) console.log(JSON.stringify({ file, bounce: false, reason: r.why }));
      else
        for (const x of r.recipients)
          console.log(
            JSON.stringify({
              file,
              recipient: x.recipient,
              bounce: true,
              kind: x.kind,
              status: x.status,
              reason: x.reason,
            }),
          );
    }
  });

program
  .command('insights')
  .description('email insights tools')
  .command('classify')
  .description('read hits as JSON lines on stdin; write one verdict line per hit ({"verdict","reason"})')
  .action(async () => {
    const { classifyHitLines } = await import('./tracking/hits/classify.ts');
    const lines: string[] = [];
    const { createInterface } = await import('node:readline');
    for await (const line of createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY }))
      if (line.trim()) lines.push(line);
    const out = classifyHitLines(lines);
    process.stdout.write(out.length ? `${out.join('\n')}\n` : '');
  });

program
  .command('reports')
  .description('report tools')
  .command('rebuild')
  .description('recompute the report rollups from sent messages and email events (all orgs, or one)')
  .option('--org <id>', 'only this org')
  .action((o: { org?: string }) =>
    withRuntime(async ({ deps }) => {
      if (o.org && !/^[0-9a-f-]{36}$/i.test(o.org)) throw new Error('--org takes an org id (a UUID)');
      const { rebuildRollups } = await import('./reports/rollups.ts');
      const t = Date.now();
      await rebuildRollups(deps, { orgId: o.org });
      console.log(
        `report rollups rebuilt (${o.org ?? 'all orgs'}) in ${((Date.now() - t) / 1000).toFixed(1)} s`,
      );
    }),
  );

program.parseAsync().catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
