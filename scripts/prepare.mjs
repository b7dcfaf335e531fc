#!/usr/bin/env node
// Runs on `npm install`/`npm ci`: builds the web UI so that `npm start` serves it at once.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

if (existsSync('web/index.html') && existsSync('node_modules/vite')) {
  const r = spawnSync('npx', ['vite', 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn'], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}
