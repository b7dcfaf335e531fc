import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorCode } from '../errors.ts';

// The one place where domain error codes become HTTP statuses.
export const httpStatus: Record<ErrorCode, number> = {
  validation_failed: 400,
  invalid_criteria: 400,
  unauthenticated: 401,
  forbidden: 403,
  csrf_failed: 403,
  not_found: 404,
  conflict: 409,
  limit_exceeded: 422,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

export function errorBody(
  code: ErrorCode,
  message: string,
  details: { path?: string; message: string }[] = [],
) {
  return { error: { code, message, details } };
}

export function handleError(err: FastifyError | AppError | Error, req: FastifyRequest, reply: FastifyReply) {
  if (err instanceof AppError) {
    return reply.status(httpStatus[err.code]).send(errorBody(err.code, err.message, err.details));
  }
  const fe = err as FastifyError & {
    validation?: { instancePath?: string; message?: string; params?: unknown }[];
  };
  if (fe.validation) {
    const details = fe.validation.map((v) => ({
      path: (v.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.') || undefined,
      message: v.message ?? 'invalid',
    }));
    return reply
      .status(400)
      .send(
        errorBody(
          'validation_failed',
          `Invalid request: ${details.map((d) => `${d.path ?? ''} ${d.message}`.trim()).join('; ')}`,
          details,
        ),
      );
  }
  if (fe.statusCode === 429)
    return reply.status(429).send(errorBody('rate_limited', 'Too many requests; try again later'));
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify's own client errors (bad JSON, body too large, wrong content type).
    return reply.status(fe.statusCode).send(errorBody('validation_failed', fe.message));
  }
  const unavailable = databaseUnavailable(err);
  if (unavailable) {
    req.log.error({ err }, unavailable);
    return reply.status(503).send(errorBody('unavailable', unavailable));
  }
  req.log.error({ err }, 'unhandled error');
  return reply.status(500).send(errorBody('internal', 'Something went wrong on our side'));
}

// When the database's state is why a request failed, say so (a 503, not "something went wrong"),
// and whether to wait or to call an administrator.
const LOST_CONNECTION = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', '57P01', '57P02', '57P03']);
function databaseUnavailable(err: Error): string | null {
  const code = (err as { code?: unknown }).code;
  if (code === '53100')
    return 'The database has run out of disk space, so nothing was saved. An administrator must free space on its disk; then try again.';
  if ((typeof code === 'string' && LOST_CONNECTION.has(code)) || /^Connection terminated/.test(err.message))
    return 'The database cannot be reached right now: what you asked for may not have been done. Try again in a moment.';
  return null;
}
