import { EntitySchema } from 'typeorm';

/** An order as the demo stores it; `version` and `timestamp` are stamped by `@Versioned`. */
export class Order {
  id!: string;
  total!: number;
  version?: number;
  timestamp?: Date;
}

export const OrderSchema = new EntitySchema<Order>({
  name: 'Order',
  target: Order,
  tableName: 'orders',
  columns: {
    id: { type: 'text', primary: true },
    total: { type: 'real' },
    version: { type: 'integer' },
    timestamp: { type: 'datetime' },
  },
});
