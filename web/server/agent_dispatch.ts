/**
 * Seed 000 `SpawnAgentOnRejoin`: when a participant rejoins a room that still exists but has
 * no agent in it (its job ended or its worker crashed), dispatch the agent again; and when a
 * participant's agent never arrived (no worker was registered when the room was created), the
 * web client asks for it (`POST /api/agent`). Self-hosted
 * LiveKit does not restart failed jobs (job restart policies are cloud only), and token
 * dispatch applies only when the join creates the room.
 */
import { AgentDispatchClient, RoomServiceClient, type ParticipantInfo } from 'livekit-server-sdk';
import { ATTR_AGENT_ALIVE, ATTR_AGENT_LEFT, ATTR_AGENT_NAME, ATTR_LANGUAGE, ATTR_LANGUAGE_CHOSEN, ATTR_RESUME_POLICY } from '../../lib/attributes.js';
import { encodeDispatchHint, type DispatchHint } from '../../lib/dispatch_hint.js';

/** `ParticipantInfo.Kind` values in livekit_models.proto (the SDK does not re-export the enum). */
export const PARTICIPANT_KIND = { standard: 0, sip: 3, agent: 4 } as const;

/** True for a participant who is a person: a browser or app (standard), a phone caller (SIP). */
export function isPerson(p: Pick<ParticipantInfo, 'kind'>): boolean {
  const kind = p.kind as number;
  return kind === PARTICIPANT_KIND.standard || kind === PARTICIPANT_KIND.sip;
}

/** The dispatch hint naming `p`, from what the server says of them (their token's attributes). */
export function hintFor(p: Pick<ParticipantInfo, 'identity' | 'name' | 'attributes'>): Omit<DispatchHint, 'v'> {
  const a = p.attributes;
  return {
    identity: p.identity,
    ...(p.name ? { name: p.name } : {}),
    ...(a[ATTR_RESUME_POLICY] !== undefined ? { resumePolicy: a[ATTR_RESUME_POLICY] } : {}),
    ...(a[ATTR_LANGUAGE] !== undefined ? { language: a[ATTR_LANGUAGE] } : {}),
    ...(a[ATTR_LANGUAGE_CHOSEN] === 'true' ? { languageChosen: true } : {}),
  };
}

/**
 * Serialises dispatch decisions per room and agent name across every service process (a look at
 * the room followed by a dispatch is not atomic on the server): `tryEnter` returns a release, or
 * null while another decision for the same agent in the room is being made (which then answers
 * for both).
 */
export interface DispatchGate {
  tryEnter(room: string, agentName: string): Promise<(() => Promise<void>) | null>;
}

/** Server connection for the dispatch. */
export interface DispatchServer {
  url: string;
  apiKey: string;
  apiSecret: string;
}

/**
 * How long a dispatch counts as on its way, ms: a job's agent usually joins 1-3 s after the
 * dispatch. Within it no second agent is sent. livekit-server's dispatch list cannot say more:
 * it shows a dispatch's job only late (often after its agent has joined, sometimes not until
 * it has left), and a job whose worker was SIGKILLed still shows as running.
 */
export const DISPATCH_ARRIVAL_GRACE_MS = 10_000;

/**
 * Who to dispatch for: a hint (the participant about to join, or who asked), or a choice among
 * the people in the room, which returns null when nobody is there to serve.
 */
export type DispatchFor = Omit<DispatchHint, 'v'> | ((people: ParticipantInfo[]) => Omit<DispatchHint, 'v'> | null) | undefined;

/** How {@link ensureAgentDispatched} decides, beyond the room's state. */
export interface DispatchOptions {
  /** One decision per room at a time (see {@link DispatchGate}). */
  gate?: DispatchGate | undefined;
  /**
   * Only into a room that has had a dispatch of `agentName` (its creator's token asked for this
   * agent): answers `'not_ours'` otherwise. A room on the same LiveKit server that was never meant
   * for this agent (another application's, a call with no agent) gets none. Ignored for `''`:
   * workers with no name are sent into every room by automatic dispatch anyway.
   */
  onlyWhereDispatched?: boolean;
}

/**
 * Dispatches `agentName` (`''`: the workers registered with no name, as automatic dispatch does)
 * into `room` unless an agent participant is already there or one is on its way, with the
 * dispatch hint of the participant when given (`lib/dispatch_hint.ts`). Returns `'dispatched'`,
 * `'present'` (an agent is in the room), `'pending'` (a dispatch of `agentName` made within
 * {@link DISPATCH_ARRIVAL_GRACE_MS}, or another request deciding for this room behind the gate:
 * sending another would put two agents in the room), `'nobody'` (`forWhom` chose nobody among
 * the people in the room), `'not_ours'` (see {@link DispatchOptions.onlyWhereDispatched}) or
 * `'no_room'` (the room is gone: the join will create it and the token's own dispatch applies).
 *
 * An older dispatch with no agent in the room is replaced: no worker took it (none was
 * registered when the room was created: livekit-server drops it and never retries), or its
 * agent left (a crashed worker), or its job is slower than the grace (then two jobs start, and
 * the one that joins the room second leaves at once without a word: `agent/job.ts`).
 */
export async function ensureAgentDispatched(
  server: DispatchServer,
  room: string,
  agentName: string,
  forWhom?: DispatchFor,
  { gate, onlyWhereDispatched = false }: DispatchOptions = {},
): Promise<'dispatched' | 'present' | 'pending' | 'nobody' | 'not_ours' | 'no_room'> {
  const release = gate === undefined ? async () => {} : await gate.tryEnter(room, agentName);
  if (release === null) return 'pending';
  try {
    const rooms = new RoomServiceClient(server.url, server.apiKey, server.apiSecret);
    const existing = await rooms.listRooms([room]);
    if (existing.length === 0) return 'no_room';
    const participants = await rooms.listParticipants(room);
    if (participants.some((p) => (p.kind as number) === PARTICIPANT_KIND.agent)) return 'present';
    const hint = typeof forWhom === 'function' ? forWhom(participants.filter(isPerson)) : forWhom;
    if (hint === null) return 'nobody';
    const dispatches = new AgentDispatchClient(server.url, server.apiKey, server.apiSecret);
    const ours = (await dispatches.listDispatch(room)).filter((d) => d.agentName === agentName);
    if (onlyWhereDispatched && agentName !== '' && ours.length === 0) return 'not_ours';
    const onItsWay = ours.some((d) => Date.now() - Number((d.state?.createdAt ?? 0n) / 1_000_000n) < DISPATCH_ARRIVAL_GRACE_MS);
    if (onItsWay) return 'pending';
    await dispatches.createDispatch(room, agentName, hint ? { metadata: encodeDispatchHint(hint) } : {});
    return 'dispatched';
  } finally {
    await release();
  }
}

/**
 * An agent whose {@link ATTR_AGENT_ALIVE} is within this of now (either way: the two machines'
 * clocks may differ a little), ms, is alive though its beats lapsed. It updates it every beat.
 */
export const CUT_OFF_ALIVE_MS = 15_000;

/**
 * Removes from `room` our agent participant `identity` (agent `agentName`) whose job stopped
 * beating (`lib/store/agent_liveness.ts`): livekit-server would keep it until its ICE timeout,
 * and while it is there no other agent is sent. Returns `'removed'`, `'gone'` (not in the room,
 * or the room is gone), `'left_on_purpose'` (it carries the leaving mark: it is on its way out
 * by itself, and not to be replaced) or `'alive'` (it says, through {@link ATTR_AGENT_ALIVE},
 * that its job is alive and only cut off from Redis: left where it is).
 */
export async function removeLapsedAgent(server: DispatchServer, room: string, identity: string, agentName: string): Promise<'removed' | 'gone' | 'left_on_purpose' | 'alive'> {
  const rooms = new RoomServiceClient(server.url, server.apiKey, server.apiSecret);
  if ((await rooms.listRooms([room])).length === 0) return 'gone';
  const agent = (await rooms.listParticipants(room)).find(
    (p) => p.identity === identity && (p.kind as number) === PARTICIPANT_KIND.agent && (p.attributes[ATTR_AGENT_NAME] ?? '') === agentName,
  );
  if (agent === undefined) return 'gone';
  if ((agent.attributes[ATTR_AGENT_LEFT] ?? '') !== '') return 'left_on_purpose';
  const aliveAtMs = Number(agent.attributes[ATTR_AGENT_ALIVE] || Number.NaN);
  if (Math.abs(Date.now() - aliveAtMs) <= CUT_OFF_ALIVE_MS) return 'alive';
  try {
    await rooms.removeParticipant(room, identity);
  } catch (err) {
    // It left (or the room closed) between the two calls.
    if (err instanceof Error && /not.?found/i.test(err.message)) return 'gone';
    throw err;
  }
  return 'removed';
}
