// One closed list of error codes for the whole domain. HTTP statuses live in http/errors.ts only.
export const errorCodes = [
  'validation_failed',
  'invalid_criteria',
  'not_found',
  'unauthenticated',
  'forbidden',
  'csrf_failed',
  'conflict',
  'rate_limited',
  'limit_exceeded',
  'unavailable',
  'internal',
] as const;

export type ErrorCode = (typeof errorCodes)[number];

export interface ErrorDetail {
  path?: string;
  message: string;
}

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const notFound = (what: string) => new AppError('not_found', `${what} not found`);
export const forbidden = (why: string) => new AppError('forbidden', why);
export const invalid = (message: string, details: ErrorDetail[] = []) =>
  new AppError('validation_failed', message, details);
