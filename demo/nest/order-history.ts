import { Injectable } from '@nestjs/common';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';

/**
 * The orders' history, in the same SQLite database as the orders. A provider of its own, so
 * `@HistoryTracked(OrderHistory)` resolves it through Nest's DI.
 */
@Injectable()
export class OrderHistory extends SqliteHistoryStore {}
