export { EventHistoryBinding, EventHistoryModule } from './event-history.module.js';
export { EventHistoryExceptionFilter, httpErrorOf } from './exception-filter.js';
export { HistoryContextInterceptor } from './history-context.interceptor.js';
export type {
  CommittedEventsOptions,
  EventEmitterLike,
  EventHistoryModuleAsyncOptions,
  EventHistoryModuleOptions,
  TransactionHostLike,
} from './options.js';
export { EVENT_HISTORY_OPTIONS, EVENT_HISTORY_STORE } from './options.js';
