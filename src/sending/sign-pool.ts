// A pool of worker threads that DKIM-sign messages in batches. RSA-2048 signing is ≈ 0.8–0.95 ms
// of CPU per message on this machine, the largest single cost of a send, so it runs off the main
// thread on every core: hundreds of messages per postMessage (one round trip per batch, not per
// message), keys parsed once and kept in each worker, a few batches in flight per worker.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DkimKey } from './dkim.ts';
import type { FromWorker, ToWorker } from './sign-pool.worker.ts';

export interface SignPoolOptions {
  /** Worker threads; the number of cores by default. */
  size?: number;
  /** Messages per postMessage; a larger sign() call is split into chunks of this size. */
  chunkSize?: number;
  /** Key sets each worker keeps (least recently used are forgotten). */
  maxKeySets?: number;
  /** Seconds since the epoch for t=; the wall clock by default. */
  now?: () => number;
}

export interface SignPool {
  /**
   * One DKIM-Signature header block (ending in CRLF) per message, in order. Pass the same `keys`
   * array for every batch of a send: it is what identifies the key set sent to the workers.
   */
  sign(keys: readonly DkimKey[], messages: readonly Buffer[]): Promise<string[]>;
  /** sign(), then each message with its signature prepended. */
  signMessages(keys: readonly DkimKey[], messages: readonly Buffer[]): Promise<Buffer[]>;
  readonly size: number;
  /** Waits for the batches in flight, then stops the workers. */
  close(): Promise<void>;
  /** For tests: stops one worker abruptly, as if it had crashed. */
  crashWorkerForTest(index: number): void;
}

interface Pending {
  resolve: (headers: string[]) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  /** key set id → last use, in insertion (LRU) order */
  keySets: Map<number, true>;
  exited: boolean;
}

const WORKER_URL = new URL('./sign-pool.worker.mjs', import.meta.url);

export function createSignPool(opts: SignPoolOptions = {}): SignPool {
  const size = Math.max(1, opts.size ?? availableParallelism());
  const chunkSize = Math.max(1, opts.chunkSize ?? 200);
  const maxKeySets = Math.max(1, opts.maxKeySets ?? 256);
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  const keyIds = new WeakMap<readonly DkimKey[], number>();
  let nextKeyId = 1;
  let nextBatch = 1;
  let closing = false;
  let inFlight = 0;
  let drained: (() => void) | null = null;
  // Exits in a row with no answer in between: a worker that cannot even start is not respawned forever.
  let crashesInARow = 0;
  let broken: string | null = null;

  const slots: Slot[] = [];
  for (let i = 0; i < size; i++) slots.push(spawn(i));

  function spawn(index: number): Slot {
    const worker = new Worker(WORKER_URL);
    worker.unref(); // an idle pool never keeps the process alive; ref'd while batches are in flight
    const slot: Slot = { worker, pending: new Map(), keySets: new Map(), exited: false };
    worker.on('message', (msg: FromWorker) => {
      crashesInARow = 0;
      const p = slot.pending.get(msg.batch);
      if (!p) return;
      slot.pending.delete(msg.batch);
      settle(slot);
      if ('error' in msg) p.reject(new Error(`DKIM signing failed: ${msg.error}`));
      else p.resolve(msg.headers);
    });
    let lastError = '';
    worker.on('error', (e) => {
      lastError = e.message; // 'exit' follows and does the work
    });
    worker.on('exit', (code) => {
      slot.exited = true;
      const lost = [...slot.pending.values()];
      slot.pending.clear();
      // Replace the worker before failing its batches, so a caller that retries at once has one.
      if (!closing && ++crashesInARow > 2 * size)
        broken = `DKIM signing workers keep exiting (last: code ${code}${lastError ? `, ${lastError}` : ''})`;
      if (!closing && !broken) slots[index] = spawn(index);
      for (const p of lost) {
        settle(slot);
        p.reject(new Error(`DKIM signing worker exited (code ${code}) with a batch in flight`));
      }
    });
    return slot;
  }

  function settle(slot: Slot) {
    inFlight--;
    if (slot.pending.size === 0) slot.worker.unref();
    if (inFlight === 0 && drained) drained();
  }

  function keyId(keys: readonly DkimKey[]): number {
    let id = keyIds.get(keys);
    if (id === undefined) {
      id = nextKeyId++;
      keyIds.set(keys, id);
    }
    return id;
  }

  function post(slot: Slot, msg: ToWorker) {
    slot.worker.postMessage(msg);
  }

  /** Makes sure the worker holds this key set, forgetting the least recently used one if full. */
  function ensureKeys(slot: Slot, id: number, keys: readonly DkimKey[]) {
    if (slot.keySets.has(id)) {
      slot.keySets.delete(id);
      slot.keySets.set(id, true);
      return;
    }
    if (slot.keySets.size >= maxKeySets) {
      const oldest = slot.keySets.keys().next().value as number;
      slot.keySets.delete(oldest);
      post(slot, { type: 'forget', id: oldest });
    }
    // KeyObjects are cloned to the worker as keys, not re-parsed from PEM.
    post(slot, { type: 'keys', id, keys: [...keys] });
    slot.keySets.set(id, true);
  }

  function leastBusy(): Slot {
    let best = slots[0];
    for (const s of slots) if (s.pending.size < best.pending.size) best = s;
    return best;
  }

  function signChunk(
    keysId: number,
    keys: readonly DkimKey[],
    messages: readonly Buffer[],
  ): Promise<string[]> {
    const slot = leastBusy();
    ensureKeys(slot, keysId, keys);
    const batch = nextBatch++;
    return new Promise<string[]>((resolve, reject) => {
      slot.pending.set(batch, { resolve, reject });
      inFlight++;
      slot.worker.ref();
      post(slot, { type: 'sign', batch, keysId, time: now(), messages: messages as Buffer[] });
    });
  }

  async function sign(keys: readonly DkimKey[], messages: readonly Buffer[]): Promise<string[]> {
    if (closing) throw new Error('the signing pool is closed');
    if (broken) throw new Error(broken);
    if (!keys.length) return messages.map(() => '');
    if (!messages.length) return [];
    const id = keyId(keys);
    const chunks: Promise<string[]>[] = [];
    for (let i = 0; i < messages.length; i += chunkSize)
      chunks.push(signChunk(id, keys, messages.slice(i, i + chunkSize)));
    return (await Promise.all(chunks)).flat();
  }

  return {
    size,
    sign,
    async signMessages(keys, messages) {
      const headers = await sign(keys, messages);
      return messages.map((m, i) => (headers[i] ? Buffer.concat([Buffer.from(headers[i], 'latin1'), m]) : m));
    },
    async close() {
      if (closing) return;
      closing = true;
      if (inFlight > 0) await new Promise<void>((r) => (drained = r));
      await Promise.all(slots.map((s) => (s.exited ? undefined : s.worker.terminate())));
    },
    crashWorkerForTest(index) {
      // terminate() stops the thread mid-batch, as a crash would; the 'exit' handler does the rest.
      void slots[index].worker.terminate();
    },
  };
}
