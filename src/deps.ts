import type { Logger } from 'pino';
import type { Config } from './config.ts';
import type { Db } from './db/pool.ts';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** What every service function receives first: no globals anywhere in the domain. */
export interface Deps {
  db: Db;
  clock: Clock;
  log: Logger;
  config: Config;
}
