import { type ChildProcess, spawn } from 'node:child_process';

// Real `parley serve` / `parley worker` processes (the bundled CLI, as operators run it) on a
// database the test owns, for the multi-process and fault suites.

export interface ParleyProcess {
  child: ChildProcess;
  /** `serve` only: the base URL it listens on (it picks a free port). */
  url?: string;
  /** Resolves when the process has exited (at once if it already has). */
  exited(): Promise<void>;
  /** Sends the signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface ParleyEnv {
  databaseUrl: string;
  secret: string;
  /** More environment (PARLEY_* settings). */
  env?: Record<string, string>;
}

export async function startParley(role: 'serve' | 'worker', o: ParleyEnv): Promise<ParleyProcess> {
  const child = spawn(process.execPath, ['bin/parley.mjs', role], {
    env: {
      ...process.env,
      PARLEY_DATABASE_URL: o.databaseUrl,
      PARLEY_SECRET: o.secret,
      PARLEY_LOG_LEVEL: 'error',
      PARLEY_PORT: '0',
      PARLEY_HOST: '127.0.0.1',
      ...o.env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = () =>
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    child.kill(signal);
    await exited();
  };
  // Both roles print a line when ready: serve its URL, worker "Parley worker running".
  const url = await new Promise<string | undefined>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // never left running unseen: the caller has no handle on it
      reject(new Error(`parley ${role} not ready in 60 s:\n${out}`));
    }, 60_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      const ready = /Parley is ready at (\S+)/.exec(out);
      if (ready || out.includes('Parley worker running')) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stdout?.resume(); // keep draining so the child never blocks on a full pipe
        resolve(ready?.[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`parley ${role} exited (${code ?? sig}) before it was ready:\n${out}`));
    });
  });
  return { child, url, exited, stop };
}
