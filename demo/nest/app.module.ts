import { Module } from '@nestjs/common';
import type Database from 'better-sqlite3';
import { DataSource } from 'typeorm';
import { EventHistoryModule } from '../../src/nestjs/index.js';
import { OrderSchema } from './order.js';
import { OrderHistory } from './order-history.js';
import { OrdersController } from './orders.controller.js';
import { OrdersService } from './orders.service.js';

/** The request's actor: the `x-user` header (an authentication guard's user in a real app). */
function actorOf(headers: Record<string, string | string[] | undefined>): string | undefined {
  const user = headers['x-user'];
  return typeof user === 'string' ? user : undefined;
}

@Module({
  imports: [
    EventHistoryModule.forRoot({
      actor: (context) => actorOf(context.switchToHttp().getRequest<{ headers: Record<string, string> }>().headers),
    }),
  ],
  controllers: [OrdersController],
  providers: [
    {
      provide: DataSource,
      useFactory: async () =>
        new DataSource({
          type: 'better-sqlite3',
          database: ':memory:',
          entities: [OrderSchema],
          synchronize: true,
        }).initialize(),
    },
    {
      provide: OrderHistory,
      useFactory: async (dataSource: DataSource) => {
        // The better-sqlite3 Database TypeORM runs on: history lives in the same database.
        const { databaseConnection } = dataSource.driver as unknown as { databaseConnection: Database.Database };
        const history = new OrderHistory(databaseConnection);
        await history.ensureSchema();
        return history;
      },
      inject: [DataSource],
    },
    OrdersService,
  ],
})
export class AppModule {}
