import type PgBoss from 'pg-boss';

// pg-boss creates a queue's table, keys and indexes in one statement, and workers starting together
// on a new database deadlock on them (PostgreSQL 40P01: a worker then failed to start). The victim's
// statement is rolled back whole, so trying again is safe: the queue exists by then, or is created.
export async function createQueue(boss: PgBoss, name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await boss.createQueue(name);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== '40P01' || attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 50 * attempt + Math.random() * 100));
    }
  }
}
