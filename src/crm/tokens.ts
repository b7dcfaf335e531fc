import { createHash, randomBytes } from 'node:crypto';

// Opaque random tokens (sessions, invites, API keys): only their SHA-256 is stored, so a database
// leak gives no usable credential.
export const newToken = (bytes = 32) => randomBytes(bytes).toString('base64url');
export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
