import { z } from 'zod';

/**
 * The persisted form of a dynamic context: what the session record stores and what a resumed
 * session gets back. States keep first-set order; events keep call order.
 */
export const contextSnapshotSchema = z.object({
  /** States in first-set order. */
  states: z.array(z.object({ name: z.string(), value: z.string() })),
  /** Events in call order. */
  events: z.array(z.string()),
  /** Highest revision applied, per sender key (so a reconnecting sender resends only what is missing). */
  revisions: z.record(z.string(), z.number().int().nonnegative()),
});

/** See {@link contextSnapshotSchema}. */
export type ContextSnapshot = z.infer<typeof contextSnapshotSchema>;

/** An empty context. */
export function emptyContextSnapshot(): ContextSnapshot {
  return { states: [], events: [], revisions: {} };
}
