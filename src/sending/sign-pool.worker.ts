// The body of a DKIM signing worker: keeps the key sets it was sent (parsed KeyObjects) and answers
// each batch with one DKIM-Signature header block per message. See sign-pool.ts for the protocol.
import { parentPort } from 'node:worker_threads';
import { type DkimKey, type DkimPrepared, dkimFinish } from './dkim.ts';

export type ToWorker =
  | { type: 'keys'; id: number; keys: DkimKey[] }
  | { type: 'forget'; id: number }
  | { type: 'sign'; batch: number; keysId: number; items: DkimPrepared[] };

export type FromWorker = { batch: number; headers: string[] } | { batch: number; error: string };

const port = parentPort;
if (!port) throw new Error('sign-pool.worker.ts must run in a worker thread');
const keySets = new Map<number, DkimKey[]>();

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'keys':
      keySets.set(msg.id, msg.keys);
      return;
    case 'forget':
      keySets.delete(msg.id);
      return;
    case 'sign': {
      const keys = keySets.get(msg.keysId);
      if (!keys) {
        port.postMessage({ batch: msg.batch, error: `unknown key set ${msg.keysId}` } satisfies FromWorker);
        return;
      }
      try {
        const headers = msg.items.map((p) => dkimFinish(p, keys));
        port.postMessage({ batch: msg.batch, headers } satisfies FromWorker);
      } catch (e) {
        port.postMessage({
          batch: msg.batch,
          error: e instanceof Error ? e.message : String(e),
        } satisfies FromWorker);
      }
    }
  }
});
