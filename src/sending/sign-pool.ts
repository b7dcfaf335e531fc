// A pool of worker threads that DKIM-sign messages in batches. RSA-2048 signing is ≈ 0.8–0.95 ms
// of CPU per message on this machine, the largest single cost of a send, so it runs off the main
// thread on every core: hundreds of messages per postMessage (one round trip per batch, not per
// message), keys parsed once and kept in each worker, a few batches in flight per worker.
// The messages themselves stay in this thread: their body hash and canonical headers are prepared
// here (dkimPrepare, ~2 % of the cost) and only that goes to a worker, which returns the signature.
// Sending whole messages across (cloned or transferred) made each thread allocate and free 10 KB
// per message in another thread's malloc arena, and the process grew by tens of MB.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { srcDir } from '../paths.ts';
import { type DkimKey, type DkimPrepared, dkimPrepare } from './dkim.ts';
import type { FromWorker, ToWorker } from './sign-pool.worker.ts';

export interface SignPoolOptions {
  /** Worker threads; the number of cores less one by default (at least one). */
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
   * Each message with its DKIM-Signature header block prepended, in order. Pass the same `keys`
   * array for every batch of a send: it is what identifies the key set sent to the workers.
   */
  signMessages(keys: readonly DkimKey[], messages: readonly Buffer[]): Promise<Buffer[]>;
  readonly size: number;
  /** Waits for the batches in flight, then stops the workers. */
  close(): Promise<void>;
  /** For tests: stops one worker abruptly, as if it had crashed. */
  crashWorkerForTest(index: number): Promise<void>;
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

// Worker threads do not inherit tsx's module hooks, and loading tsx in each thread cost ~35 MB of
// memory per thread. So the worker's few modules are bundled once per process into plain JS by
// esbuild (what tsx itself runs on) and each thread starts from that source.
let workerUrl: Promise<URL> | undefined;
function bundledWorker(): Promise<URL> {
  workerUrl ??= import('esbuild').then(async ({ build }) => {
    const r = await build({
      entryPoints: [join(srcDir, 'sending', 'sign-pool.worker.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      write: false,
      logLevel: 'silent',
    });
    return new URL(`data:text/javascript,${encodeURIComponent(r.outputFiles[0].text)}`);
  });
  return workerUrl;
}

export function createSignPool(opts: SignPoolOptions = {}): SignPool {
  // One core is left to the thread that renders and sends (and to PostgreSQL).
  const size = Math.max(1, opts.size ?? availableParallelism() - 1);
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
  let url: URL | undefined;
  const started = bundledWorker().then((u) => {
    url = u;
    for (let i = 0; i < size; i++) slots.push(spawn(i));
  });
  started.catch(() => {}); // reported to the first caller

  function spawn(index: number): Slot {
    // A signing thread keeps almost nothing between batches (keys, and the messages are off-heap),
    // so a small young generation is enough: the default one cost ~20 MB of memory per thread.
    const worker = new Worker(url as URL, { resourceLimits: { maxYoungGenerationSizeMb: 4 } });
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

  function signChunk(keysId: number, keys: readonly DkimKey[], items: DkimPrepared[]): Promise<string[]> {
    const slot = leastBusy();
    ensureKeys(slot, keysId, keys);
    const batch = nextBatch++;
    return new Promise<string[]>((resolve, reject) => {
      slot.pending.set(batch, { resolve, reject });
      inFlight++;
      slot.worker.ref();
      post(slot, { type: 'sign', batch, keysId, items });
    });
  }

  async function signMessages(keys: readonly DkimKey[], messages: readonly Buffer[]): Promise<Buffer[]> {
    if (closing) throw new Error('the signing pool is closed');
    await started;
    if (broken) throw new Error(broken);
    if (!keys.length) return [...messages];
    if (!messages.length) return [];
    const id = keyId(keys);
    const time = now();
    const items = messages.map((m) => dkimPrepare(m, keys, { time }));
    const chunks: Promise<string[]>[] = [];
    for (let i = 0; i < items.length; i += chunkSize)
      chunks.push(signChunk(id, keys, items.slice(i, i + chunkSize)));
    const headers = (await Promise.all(chunks)).flat();
    return messages.map((m, i) => Buffer.concat([Buffer.from(headers[i], 'latin1'), m]));
  }

  return {
    size,
    signMessages,
    async close() {
      if (closing) return;
      closing = true;
      await started.catch(() => {}); // calls made before close() post their batches first
      if (inFlight > 0) await new Promise<void>((r) => (drained = r));
      await Promise.all(slots.map((s) => (s.exited ? undefined : s.worker.terminate())));
    },
    async crashWorkerForTest(index) {
      await started;
      // terminate() stops the thread mid-batch, as a crash would; the 'exit' handler does the rest.
      void slots[index].worker.terminate();
    },
  };
}
