export type {
  ConsumeOptions,
  JetStreamLike,
  JetStreamManagerLike,
  NatsPublisherOptions,
  PublishResult,
  RedisPublisherOptions,
  RedisReaderLike,
  RedisStreamsLike,
  RelayMessage,
  RelayPublisher,
} from './brokers.js';
export {
  allPublishers,
  consumeDeduplicated,
  Deduplicator,
  decodeEntry,
  dedupId,
  ensureNatsStream,
  natsPublisher,
  redisPublisher,
  subjectToken,
} from './brokers.js';
export type { RelayOptions, RelayStats } from './relay.js';
export { relay } from './relay.js';
export type { MysqlPoolLike, PostgresPoolLike, RelayedEntry, RelaySource, RelaySourceOptions } from './source.js';
export { mysqlRelaySource, postgresRelaySource, sqliteRelaySource } from './source.js';
