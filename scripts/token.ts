/**
 * Prints the server URL and a participant token, e.g. for the LiveKit Agents Playground
 * (https://agents-playground.livekit.io → "Manual" → paste URL and token).
 *
 *   npm run token -- --identity alice --room demo [--policy AlwaysResume] [--name Alice] [--language es-MX [--language-chosen]]
 *
 * `--language-chosen`: the participant picked that language themselves, so it outranks one the
 * agent heard them speak (as the web client's language menu does); without it, the language is a
 * default, like a browser's.
 */
import dotenv from 'dotenv';
import { parseArgs } from 'node:util';
import { ConfigError } from '../lib/errors.js';
import { parseLanguageTag } from '../lib/session/language.js';
import { loadPolicyFromEnv, readInt } from '../lib/session/policy.js';
import { mintParticipantToken, type ResumePolicyName } from '../web/server/tokens.js';

function fail(msg: string): never {
  process.stderr.write(`token: ${msg}\n`);
  process.exit(2);
}

/** The command line; a mistyped option is a usage error (exit 2), never a stack trace. */
function commandLine() {
  try {
    return parseArgs({
      options: {
        identity: { type: 'string' },
        room: { type: 'string', default: 'playground' },
        name: { type: 'string' },
        policy: { type: 'string' },
        language: { type: 'string' },
        'language-chosen': { type: 'boolean', default: false },
        'rejoin-ttl-ms': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
}
const { values } = commandLine();

/** How long the room waits for a rejoin: `--rejoin-ttl-ms`, else `REJOIN_TTL_MS` read exactly as the worker reads it. */
function rejoinTtl(): number {
  try {
    const flag = values['rejoin-ttl-ms'];
    if (flag === undefined) return loadPolicyFromEnv(process.env).rejoinTtlMs;
    if (flag.trim() === '') fail('--rejoin-ttl-ms must not be empty');
    return readInt({ '--rejoin-ttl-ms': flag }, '--rejoin-ttl-ms', 0, 0);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
}

// Like the worker: variables already set win over the file.
const envFile = process.env.PVA_ENV_FILE ?? '.env';
if (envFile !== '') dotenv.config({ path: envFile, quiet: true });
// No LiveKit configured: the local development server, with its key (as `npm run dev` uses it; a
// key from .env would sign tokens that server refuses).
if (!process.env.LIVEKIT_URL?.trim()) dotenv.config({ path: '.env.development', quiet: true, override: true });
const url = process.env.LIVEKIT_URL;
const apiKey = process.env.LIVEKIT_API_KEY;
const apiSecret = process.env.LIVEKIT_API_SECRET;
if (!url || !apiKey || !apiSecret) fail('LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set');
if (!values.identity) fail('--identity is required (the participant identity the agent will remember)');
const policies: ResumePolicyName[] = ['AlwaysFresh', 'ResumeIfPossible', 'AlwaysResume'];
if (values.policy !== undefined && !policies.includes(values.policy as ResumePolicyName)) {
  fail(`--policy must be one of ${policies.join(', ')}`);
}
const language = values.language === undefined ? null : parseLanguageTag(values.language);
if (values.language !== undefined && language === null) fail('--language must be a BCP 47 language tag such as es-MX');
if (values['language-chosen'] && language === null) fail('--language-chosen needs --language');
const rejoinTtlMs = rejoinTtl();

const token = await mintParticipantToken({
  apiKey,
  apiSecret,
  identity: values.identity,
  room: values.room!,
  ...(values.name ? { name: values.name } : {}),
  ...(process.env.LIVEKIT_AGENT_NAME ? { agentName: process.env.LIVEKIT_AGENT_NAME } : {}),
  ...(values.policy ? { resumePolicy: values.policy as ResumePolicyName } : {}),
  ...(language ? { language, ...(values['language-chosen'] ? { languageChosen: true } : {}) } : {}),
  rejoinTtlMs,
});
if (values.json) {
  process.stdout.write(`${JSON.stringify({ url, token, room: values.room })}\n`);
} else {
  process.stdout.write(`Server URL: ${url}\nRoom:       ${values.room}\nToken:      ${token}\n`);
}
