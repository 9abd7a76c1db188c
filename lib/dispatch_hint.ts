import { z } from 'zod';

/**
 * The dispatch hint: metadata that the project's tokens put on their agent dispatch
 * (`RoomAgentDispatch.metadata` → `ctx.job.metadata`), naming the participant whose join
 * creates the room. The job uses it to claim that participant's session while it is still
 * connecting to the room, which takes the store round trip off the join-to-greeting path.
 * It is a speculation: it is used only when the participant who actually arrives has exactly
 * this identity, name, resume-policy and language attributes (the language's choice mark included), and is otherwise discarded; and it claims
 * only a session that no other job holds live (it never takes a conversation over).
 * Only a holder of the API secret can set it, like the token attributes.
 */
const dispatchHintSchema = z.object({
  v: z.literal(1),
  identity: z.string().min(1),
  name: z.string().optional(),
  resumePolicy: z.string().optional(),
  /** The participant's language attribute (`pva.language`), as the token carries it. */
  language: z.string().optional(),
  /** True when the token marks that language as chosen (`pva.language_chosen`). */
  languageChosen: z.boolean().optional(),
});

/** See the module comment. */
export type DispatchHint = z.infer<typeof dispatchHintSchema>;

/** The metadata string of a hint. */
export function encodeDispatchHint(hint: Omit<DispatchHint, 'v'>): string {
  return JSON.stringify({ v: 1, ...hint });
}

/** The hint in a job's metadata, or null (none, or anything else: never throws). */
export function parseDispatchHint(metadata: string | undefined): DispatchHint | null {
  if (!metadata) return null;
  try {
    const parsed = dispatchHintSchema.safeParse(JSON.parse(metadata));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** What a hint names about its participant (the facts of a participant in the room, compared by {@link hintMatches}). */
export interface HintedParticipant {
  identity: string;
  name?: string | undefined;
  resumePolicy?: string | undefined;
  language?: string | undefined;
  languageChosen?: boolean | undefined;
}

/** True when `participant` is the one the hint announced (identity, name, policy and language attributes). */
export function hintMatches(hint: DispatchHint, participant: HintedParticipant): boolean {
  return (
    hint.identity === participant.identity &&
    (hint.name ?? '') === (participant.name ?? '') &&
    (hint.resumePolicy ?? '') === (participant.resumePolicy ?? '') &&
    (hint.language ?? '') === (participant.language ?? '') &&
    (hint.languageChosen === true) === (participant.languageChosen === true)
  );
}
