import { hash, verify } from '@node-rs/argon2';
import { invalid } from '../errors.ts';

// Argon2id (memory-hard) with the library's defaults (19 MiB, 2 passes): OWASP's minimum.
export const hashPassword = (password: string) => hash(password);

export async function verifyPassword(stored: string | null, password: string): Promise<boolean> {
  if (!stored) return false;
  try {
    return await verify(stored, password);
  } catch {
    return false;
  }
}

export function checkNewPassword(password: unknown): string {
  if (typeof password !== 'string' || password.length < 8 || password.length > 200)
    throw invalid('The password must be 8 to 200 characters', [
      { path: 'password', message: '8 to 200 characters' },
    ]);
  return password;
}
