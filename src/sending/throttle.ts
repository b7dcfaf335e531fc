// Sending limits for one relay: messages per second for the relay and per receiving domain, and
// concurrent sends per receiving domain (the relay's own connection cap is nodemailer's pool
// maxConnections). Written here rather than with nodemailer's rateLimit option because that one
// is per transport only and cannot say "later" without holding the message; these tell the
// caller how long a send would wait, so a message that would wait too long is put back in the
// queue instead of being held while claimed. These hold one process's share of a relay's limits;
// relay-share.ts splits them between the live workers.

import { LEFT_TO_OTHERS_RETRY_MS } from './relay-share.ts';

/** Milliseconds on a monotonic clock (performance.now in production, a fake one in tests). */
export interface TickClock {
  now(): number;
}

export const monotonicClock: TickClock = { now: () => performance.now() };

/**
 * "At most `perSecond` messages per second, evenly spaced": the generic cell rate algorithm. Each
 * accepted send pushes the theoretical arrival time (tat) one interval further; a send may start
 * at `tat - tolerance`. With burst 1 sends are spaced exactly 1/perSecond apart.
 */
export class RateLimit {
  private tat = Number.NEGATIVE_INFINITY;
  private readonly interval: number;
  private readonly tolerance: number;

  constructor(
    readonly perSecond: number,
    burst = 1,
  ) {
    if (!(perSecond > 0)) throw new Error('perSecond must be positive');
    this.interval = 1000 / perSecond;
    this.tolerance = (Math.max(1, Math.floor(burst)) - 1) * this.interval;
  }

  /** The earliest time (on the clock) at which a send may start, reserving nothing. */
  earliest(now: number): number {
    return Math.max(now, this.tat - this.tolerance);
  }

  /** How many sends could start from now until `now + withinMs`, none reserved. */
  room(now: number, withinMs: number): number {
    const first = this.earliest(now);
    if (first > now + withinMs) return 0;
    return Math.floor((now + withinMs - first) / this.interval) + 1;
  }

  /** Records a send starting at `at` (never before earliest()). */
  commit(at: number): void {
    this.tat = Math.max(this.tat, at) + this.interval;
  }
}

/** A counting semaphore with FIFO waiters. */
export class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(readonly max: number) {
    if (!(max >= 1)) throw new Error('a semaphore needs at least one slot');
  }

  get inUse(): number {
    return this.active;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Resolves with a release function once a slot is free. Call the release exactly once. */
  acquire(): Promise<() => void> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => this.waiters.push(() => resolve(this.releaser())));
  }

  /** Like acquire, but gives up after `timeoutMs`: resolves with null, holding nothing. */
  acquireWithin(timeoutMs: number): Promise<(() => void) | null> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => {
      const waiter = () => {
        clearTimeout(timer);
        resolve(this.releaser());
      };
      const timer = setTimeout(
        () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve(null);
        },
        Math.max(0, timeoutMs),
      );
      this.waiters.push(waiter);
    });
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiters.shift();
      if (next)
        next(); // the slot passes straight to the next waiter
      else this.active--;
    };
  }
}

export interface DomainLimit {
  /** Concurrent sends to this receiving domain; 0: none from this process (relay-share.ts). */
  connections?: number;
  /** Messages per second to this receiving domain. */
  perSecond?: number;
}

export interface LimitSettings {
  /** Messages per second through the relay. */
  perSecond: number;
  /** Concurrent sends through the relay (its pool's connections); unlimited when absent. */
  maxConnections?: number;
  /** By receiving domain (lowercase ASCII); an entry also covers the domain's subdomains. */
  domains: Record<string, DomainLimit>;
}

interface DomainState {
  rate?: RateLimit;
  slots?: Semaphore;
}

/** All the limits of one relay, shared by every delivery through it in this process. */
export class DeliveryLimiter {
  private readonly relayRate: RateLimit;
  private readonly relaySlots?: Semaphore;
  private readonly domains = new Map<string, DomainState>();

  constructor(
    private readonly settings: LimitSettings,
    private readonly clock: TickClock = monotonicClock,
  ) {
    this.relayRate = new RateLimit(settings.perSecond);
    if (settings.maxConnections) this.relaySlots = new Semaphore(settings.maxConnections);
  }

  /** The configured entry that covers `domain` (itself or its closest parent), if any. */
  limitKey(domain: string): string | undefined {
    let d = domain.toLowerCase();
    for (;;) {
      if (Object.hasOwn(this.settings.domains, d)) return d;
      const dot = d.indexOf('.');
      if (dot < 0) return undefined;
      d = d.slice(dot + 1);
    }
  }

  private domainState(key: string): DomainState {
    let s = this.domains.get(key);
    if (!s) {
      const limit = this.settings.domains[key];
      s = {
        rate: limit.perSecond ? new RateLimit(limit.perSecond) : undefined,
        slots: limit.connections ? new Semaphore(limit.connections) : undefined,
      };
      this.domains.set(key, s);
    }
    return s;
  }

  /** Whether this process sends nothing to the configured domain (`connections: 0`: relay-share.ts). */
  private leftToOthers(key: string): boolean {
    return this.settings.domains[key].connections === 0;
  }

  /** The configured domains this process sends nothing to. */
  domainsLeftToOthers(): string[] {
    return Object.keys(this.settings.domains).filter((d) => this.leftToOthers(d));
  }

  /** How many messages the relay's rate lets start within `horizonMs` (domains' limits aside). */
  room(horizonMs: number): number {
    return this.relayRate.room(this.clock.now(), horizonMs);
  }

  /**
   * Reserves the next send slot for a message to `domain` under the relay's and the domain's rate:
   * returns how many ms from now the send may start, or null (nothing reserved) when that is more
   * than `horizonMs` away, with `retryInMs` telling when to try again.
   */
  reserve(domain: string, horizonMs: number): { delayMs: number } | { delayMs: null; retryInMs: number } {
    const now = this.clock.now();
    const key = this.limitKey(domain);
    // Other workers send to this domain: back to the queue, where one of them will take it.
    if (key && this.leftToOthers(key)) return { delayMs: null, retryInMs: LEFT_TO_OTHERS_RETRY_MS };
    const rate = key ? this.domainState(key).rate : undefined;
    const at = Math.max(this.relayRate.earliest(now), rate ? rate.earliest(now) : now);
    if (at - now > horizonMs) return { delayMs: null, retryInMs: Math.ceil(at - now) };
    this.relayRate.commit(at);
    rate?.commit(at);
    return { delayMs: at - now };
  }

  /**
   * Waits for a concurrent-send slot of the domain, then one of the relay (always in that order, so
   * waiters never deadlock). Resolves with null, holding nothing, when both are not had within
   * `timeoutMs`: the caller puts the message back in the queue rather than hold it while claimed.
   */
  async acquireSlots(domain: string, timeoutMs: number): Promise<(() => void) | null> {
    const start = this.clock.now();
    const key = this.limitKey(domain);
    const domainSlots = key ? this.domainState(key).slots : undefined;
    const releaseDomain = domainSlots ? await domainSlots.acquireWithin(timeoutMs) : () => {};
    if (!releaseDomain) return null;
    if (!this.relaySlots) return releaseDomain;
    const left = timeoutMs - (this.clock.now() - start);
    const releaseRelay = await this.relaySlots.acquireWithin(left);
    if (!releaseRelay) {
      releaseDomain();
      return null;
    }
    return () => {
      releaseRelay();
      releaseDomain();
    };
  }
}
