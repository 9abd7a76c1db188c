/**
 * Types of `cluster-key-slot` (the hash slot function ioredis itself uses), which ships none.
 */
declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot (0–16383) of `key`; a `{hash tag}` in it is honoured. */
  export default function calculateSlot(key: string | Buffer): number;
}
