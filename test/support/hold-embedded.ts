// Starts the embedded PostgreSQL in the folder given as argument and waits to be killed (tests use
// it to leave an orphaned postmaster behind, as a SIGKILLed `parley start` does).
import { startEmbeddedPostgres } from '../../src/db/embedded.ts';

await startEmbeddedPostgres({ dataDir: process.argv[2] });
console.log('up');
setInterval(() => {}, 1000);
