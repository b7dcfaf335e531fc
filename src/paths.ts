// Where the source tree is, for the files read at run time (migrations, the signing worker, the
// built web UI). From source (tsx, vitest) this file's folder is src/; bin/parley.mjs runs a bundle
// in dist/ (scripts/build-server.mjs), where PARLEY_BUNDLE is defined and src/ is a sibling.
import { join } from 'node:path';

declare const PARLEY_BUNDLE: boolean | undefined;

export const srcDir: string =
  typeof PARLEY_BUNDLE !== 'undefined' ? join(import.meta.dirname, '..', 'src') : import.meta.dirname;
