/** Session stores: the port, its adapters, keys and payload sealing. */
export * from './session_store.js';
export * from './keys.js';
export * from './crypto.js';
export * from './memory_session_store.js';
export * from './redis_session_store.js';
export { boundedSentinelOptions, createBoundedRedis, type RedisBounds, type RedisSentinelTarget, type RedisTarget, type SentinelAddress } from './redis_connection.js';
export { parseRedisEnv, redisEnvProblems, redisEnvShape, redisTargetOf, replicaAcksOf, type RedisEnv, type RedisEnvSource, type ReplicaAcks } from './redis_env.js';
export * from './tiered_session_store.js';
export { bounded, isUnavailable } from './bounded.js';
