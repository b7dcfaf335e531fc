// Entry of a DKIM signing worker thread (see sign-pool.ts). Worker threads do not inherit the
// parent's module hooks, so this plain-JS entry registers tsx before loading the TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('./sign-pool.worker.ts');
