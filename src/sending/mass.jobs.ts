import type { Deps } from '../deps.ts';
import { runAutomations } from './automation.service.ts';
import { launchDue } from './mass-launch.ts';

// The scheduler loop of mass sending: launches due mass emails and follow-ups, and runs the
// autoresponders and workflow rules, every few seconds. Safe in any number of workers: each launch
// and each rule run takes a row lock (SKIP LOCKED).

export interface MassScheduler {
  stop(): Promise<void>;
}

export function startMassScheduler(
  deps: Deps,
  opts: { pollMs?: number; isStopping?: () => boolean; onLaunched?: () => void } = {},
): MassScheduler {
  const pollMs = opts.pollMs ?? 2000;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> = Promise.resolve();
  const tick = async () => {
    try {
      const launched = await launchDue(deps);
      const queued = await runAutomations(deps);
      if (launched + queued > 0) opts.onLaunched?.();
    } catch (err) {
      if (!opts.isStopping?.() && !stopped) deps.log.error({ err }, 'mass scheduler tick failed');
    }
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = tick().finally(schedule);
    }, pollMs);
  };
  running = tick().finally(schedule);
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
