/**
 * Names shared by the token service, the worker and the clients. Participant attributes
 * listed here are set only by tokens the project mints (which never grant
 * `canUpdateOwnMetadata`), so a participant cannot forge them.
 */

/** Token attribute: per-participant resume policy override (`AlwaysFresh` | `ResumeIfPossible` | `AlwaysResume`). */
export const ATTR_RESUME_POLICY = 'pva.resume_policy';

/** Token attribute: the participant's language, a BCP 47 tag (`lib/session/language.ts`). */
export const ATTR_LANGUAGE = 'pva.language';

/** Token attribute: `"true"` when the participant chose `pva.language` (the web client's menu), not their browser. */
export const ATTR_LANGUAGE_CHOSEN = 'pva.language_chosen';

/** Token attribute: `"1"` marks a participant allowed to publish dynamic context for others (a backend). */
export const ATTR_CONTEXT_PUBLISHER = 'pva.context_publisher';

/** Data-message topic of the dynamic-context protocol (ours, not `lk.*`). */
export const CONTEXT_TOPIC = 'pva.context';

/** Data-message topic on which the agent tells a client about its session (state, greeting, errors). */
export const SESSION_TOPIC = 'pva.session';

/** Agent attribute set by agents-js on every agent participant: its worker's agent name (`''` for none). */
export const ATTR_AGENT_NAME = 'lk.agent.name';

/**
 * Agent attribute: set by the agent just before it leaves a room on purpose (the call ended, the
 * conversation was taken over elsewhere, a resume was refused), to the reason. An agent that
 * leaves without it (its worker crashed, or was stopped before the call ended) is replaced by
 * the token service when someone is still in the room (`web/server/agent_webhooks.ts`).
 */
export const ATTR_AGENT_LEFT = 'pva.agent_left';

/**
 * Agent attribute: set by an agent whose liveness beats cannot reach Redis
 * (`lib/store/agent_liveness.ts`), to the epoch ms of its latest try, every beat while that lasts,
 * and emptied once they reach it again. The token service does not take an agent showing a recent
 * one for dead (its job is alive, cut off from Redis, and still holding turns it could not save).
 */
export const ATTR_AGENT_ALIVE = 'pva.agent_alive';
