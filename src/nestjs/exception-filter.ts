import { type ArgumentsHost, Catch, HttpException, type HttpServer, HttpStatus } from '@nestjs/common';
import { BaseExceptionFilter, type HttpAdapterHost } from '@nestjs/core';
import {
  EventHistoryError,
  InvalidEntityError,
  TransactionRetriesExhaustedError,
  VersionConflictError,
} from '../errors.js';

/**
 * The HTTP answer for a library error: `VersionConflictError` → 409 Conflict (with `entityType`,
 * `entityId`, `expectedVersion`), `TransactionRetriesExhaustedError` (concurrent transactions kept colliding) → 409 too,
 * `InvalidEntityError` → 400 Bad Request (except one that says the call got no entity at all, a
 * misplaced decorator: `programmingError`); anything else is a server-side problem (a missing
 * session, an unsupported session, a failed history write, a misplaced decorator) and stays a 500
 * with a generic message, logged by Nest.
 *
 * ```ts
 * httpErrorOf(new VersionConflictError('Order', '42', 3)); // { status: 409, body: { … } }
 * ```
 */
export function httpErrorOf(error: EventHistoryError): { status: number; body: Record<string, unknown> } | undefined {
  if (error instanceof VersionConflictError) {
    return {
      status: HttpStatus.CONFLICT,
      body: {
        statusCode: HttpStatus.CONFLICT,
        error: 'Conflict',
        code: error.code,
        message: error.message,
        entityType: error.entityType,
        entityId: error.entityId,
        expectedVersion: error.expectedVersion,
      },
    };
  }
  if (error instanceof TransactionRetriesExhaustedError) {
    // Concurrent transactions kept colliding: the client may send the request again.
    return {
      status: HttpStatus.CONFLICT,
      body: { statusCode: HttpStatus.CONFLICT, error: 'Conflict', code: error.code, message: error.message },
    };
  }
  // No entity where the decorator looks for one is a mistake in the code: Nest's logged 500.
  if (error instanceof InvalidEntityError && !error.programmingError) {
    return {
      status: HttpStatus.BAD_REQUEST,
      body: { statusCode: HttpStatus.BAD_REQUEST, error: 'Bad Request', code: error.code, message: error.message },
    };
  }
  return undefined;
}

/**
 * Answers `VersionConflictError` with HTTP 409 and `InvalidEntityError` with 400 (see
 * {@link httpErrorOf}); other library errors go on to Nest's default handling (500). The module
 * registers it for every route unless `filter: false`; to add it yourself:
 *
 * ```ts
 * app.useGlobalFilters(new EventHistoryExceptionFilter(app.getHttpAdapter()));
 * ```
 */
export class EventHistoryExceptionFilter extends BaseExceptionFilter {
  protected override readonly httpAdapterHost?: HttpAdapterHost;

  /**
   * Give the HTTP adapter (`app.getHttpAdapter()`), or the `HttpAdapterHost`, whose adapter is
   * read when an error arrives: in a testing module the filter exists before the adapter does.
   */
  constructor(applicationRef?: HttpServer, adapterHost?: HttpAdapterHost) {
    super(applicationRef);
    this.httpAdapterHost = adapterHost;
  }

  override catch(exception: unknown, host: ArgumentsHost): void {
    // Over RPC or WebSockets the error goes back to that transport's own handling unchanged.
    if (host.getType() !== 'http') throw exception;
    const mapped = exception instanceof EventHistoryError ? httpErrorOf(exception) : undefined;
    if (mapped === undefined) {
      super.catch(exception, host);
      return;
    }
    super.catch(new HttpException(mapped.body, mapped.status, { cause: exception }), host);
  }
}

Catch(EventHistoryError)(EventHistoryExceptionFilter);
