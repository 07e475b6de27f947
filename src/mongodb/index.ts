export type { MongoSessionLike } from '../transactions/mongodb.js';
export { mongodbAdapter } from '../transactions/mongodb.js';
export type { MongoDbLike, MongoHistoryStoreOptions } from './mongodb-store.js';
export { MongoHistoryStore } from './mongodb-store.js';
