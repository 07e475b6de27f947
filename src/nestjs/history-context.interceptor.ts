import { type CallHandler, type ExecutionContext, Inject, Injectable, type NestInterceptor } from '@nestjs/common';
import { Observable } from 'rxjs';
import { type HistoryContext, withHistoryContext } from '../context.js';
import { EVENT_HISTORY_OPTIONS, type EventHistoryModuleOptions } from './options.js';

/**
 * Runs each handler inside `withHistoryContext`, with the actor (and reason and metadata) the
 * module's options read from the request, so every history entry the request writes carries
 * them. The module registers it for every route unless `interceptor: false`; then add it where
 * wanted with `@UseInterceptors(HistoryContextInterceptor)`.
 *
 * ```ts
 * @UseInterceptors(HistoryContextInterceptor)
 * @Controller('orders') export class OrdersController {}
 * ```
 */
export class HistoryContextInterceptor implements NestInterceptor {
  readonly #options: EventHistoryModuleOptions;

  constructor(options: EventHistoryModuleOptions) {
    this.#options = options;
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const history: HistoryContext = { ...this.#options.context?.(context) };
    const actor = this.#options.actor?.(context);
    if (actor !== undefined) history.actor = actor;
    if (Object.keys(history).length === 0) return next.handle();
    // Subscribing inside the context starts the handler there, so its async work inherits it.
    return new Observable((subscriber) => {
      const subscription = withHistoryContext(history, () => next.handle().subscribe(subscriber));
      return () => subscription.unsubscribe();
    });
  }
}

Injectable()(HistoryContextInterceptor);
Inject(EVENT_HISTORY_OPTIONS)(HistoryContextInterceptor, undefined, 0);
