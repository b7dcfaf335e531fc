import { sql } from 'kysely';

/**
 * A timestamptz from a column of milliseconds since the epoch (exact: whole microseconds). Rows sent
 * as one JSON parameter carry their times this way, so no Date is formatted per row. `col` is
 * spliced into the SQL as is: a column name written in the code, never a value.
 */
export const fromMs = (col: string) => sql.raw(`(timestamptz 'epoch' + ${col} * interval '1 millisecond')`);
