import { describe, expect, it } from 'vitest';
import { defaultDataDir, loadConfig } from './config.ts';

describe('config', () => {
  it('picks a data folder that root and ordinary users can both use', () => {
    expect(defaultDataDir({}, 0, '/root')).toBe('/var/lib/parley');
    expect(defaultDataDir({}, 1000, '/home/ana')).toBe('/home/ana/.local/share/parley');
    expect(defaultDataDir({ XDG_DATA_HOME: '/data' }, 1000, '/home/ana')).toBe('/data/parley');
  });
  it('reads PARLEY_* variables and explains bad ones', () => {
    const c = loadConfig({ PARLEY_PORT: '4000', PARLEY_DATA_DIR: '/srv/p' });
    expect(c).toMatchObject({
      port: 4000,
      dataDir: '/srv/p',
      publicUrl: 'http://localhost:4000',
      secureCookies: false,
    });
    expect(() => loadConfig({ PARLEY_PORT: 'eighty' })).toThrow(/PARLEY_PORT/);
    expect(() => loadConfig({ PARLEY_SECRET: 'short' })).toThrow(/at least 32/);
    expect(loadConfig({ PARLEY_PUBLIC_URL: 'https://crm.example.com/' }).secureCookies).toBe(true);
  });
});
