/**
 * The participant's language: a BCP 47 tag the token service puts in the participant's token
 * (from the page's `navigator.language`, or `npm run token -- --language`), remembered in the
 * session record and the identity profile, so a return is greeted in it even without the tag.
 * Pure.
 *
 * Why: the greeting is the agent's first words and is rendered from templates (no model on the
 * greeting path), so without a known language every participant is greeted in English, however
 * they spoke last time; the model is told the language too, so its first answer matches.
 */

/** Longest tag accepted (a language, script, region and a variant fit well within it). */
export const MAX_LANGUAGE_TAG_CHARS = 35;

/** The languages greetings are written in; any other language is greeted in English. */
export const GREETING_LANGUAGES = ['en', 'es', 'fr', 'de'] as const;

/** A language greetings are written in. */
export type GreetingLanguage = (typeof GREETING_LANGUAGES)[number];

/**
 * The canonical form of a well-formed BCP 47 language tag (`es-mx` → `es-MX`), or null when
 * `raw` is absent, empty, too long or not a language tag (private-use and grandfathered tags
 * included: they name no language the agent can speak).
 */
export function parseLanguageTag(raw: string | undefined | null): string | null {
  const tag = raw?.trim() ?? '';
  if (tag === '' || tag.length > MAX_LANGUAGE_TAG_CHARS || !/^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$/.test(tag)) return null;
  try {
    return Intl.getCanonicalLocales(tag)[0] ?? null;
  } catch {
    return null;
  }
}

/** The primary language subtag of a language tag, lower-cased (`es-MX` → `es`): what speech models take. */
export function primaryLanguageOf(tag: string): string {
  return tag.split('-')[0]!.toLowerCase();
}

/** The greeting language of `tag` (its primary subtag), English when there is none or it has no greetings. */
export function greetingLanguageOf(tag: string | null): GreetingLanguage {
  const primary = tag === null ? '' : primaryLanguageOf(tag);
  return (GREETING_LANGUAGES as readonly string[]).includes(primary) ? (primary as GreetingLanguage) : 'en';
}

/** A remembered language (a record's or a profile's), and whether it is the participant's own (heard or chosen). */
export interface RememberedLanguage {
  language: string | null;
  /** True when `language` was learned from the participant's own words, spoken or typed ({@link SpokenLanguage}), not given by a token. */
  languageHeard?: boolean;
  /** True when the participant chose `language` themselves (the web client's language menu), not their browser. */
  languageChosen?: boolean;
}

/** The language a conversation starts in, and where it came from (both false: a token's, or none). */
export interface ArrivalLanguage {
  language: string | null;
  /** The participant was heard speaking it (kept as the record's `languageHeard`). */
  heard: boolean;
  /** The participant chose it (kept as the record's `languageChosen`). */
  chosen: boolean;
}

/**
 * The language a conversation starts in. A language the participant chose (`tokenChosen`: the
 * token's language is their pick from the web client's menu, not their browser's) outranks
 * everything: it is what they asked for. Then their own language, remembered: one
 * they were heard speaking or chose earlier, on any device; a token naming the same language
 * more precisely keeps its tag (`es-MX` for a heard `es`). A token's language is usually the
 * browser's default (the web client sends `navigator.language`): it outranks only a language
 * remembered from an earlier token, which is used when the token names none. If the participant
 * then speaks another language, {@link SpokenLanguage} learns it. `revealMemory` false
 * (`AlwaysFresh`, a kiosk): only the token's language, chosen or not.
 */
export function arrivalLanguage(token: string | null, remembered: RememberedLanguage | null, revealMemory: boolean, tokenChosen = false): ArrivalLanguage {
  const fromToken = { language: token, heard: false, chosen: token !== null && tokenChosen };
  if (fromToken.chosen || !revealMemory) return fromToken;
  const heard = remembered?.languageHeard === true;
  const chosen = !heard && remembered?.languageChosen === true;
  if ((heard || chosen) && remembered?.language != null) {
    const same = token !== null && primaryLanguageOf(token) === primaryLanguageOf(remembered.language);
    return { language: same ? token : remembered.language, heard, chosen };
  }
  return { language: token ?? remembered?.language ?? null, heard: false, chosen: false };
}

/** The instruction that tells the model the participant's language. */
export function languageInstruction(tag: string): string {
  return `The participant's language is "${tag}" (BCP 47): speak it with them, unless they switch to another language.`;
}

/**
 * Final transcripts in a row that must agree on a new language before it is adopted: one short
 * utterance ("OK", "sí", a name) is often detected as the wrong language.
 */
export const SPOKEN_LANGUAGE_CONFIRMATIONS = 2;

/**
 * The language a speech-to-text that detects it reports for a final transcript, as a canonical
 * tag, or null when it names no language: absent, empty, `und`, or a setting such as `multi`
 * (not a language tag: {@link parseLanguageTag} wants a primary subtag of two or three letters).
 */
export function detectedLanguageOf(raw: string | null | undefined): string | null {
  const tag = parseLanguageTag(raw);
  return tag === null || primaryLanguageOf(tag) === 'und' ? null : tag;
}

/**
 * Learns the language a participant speaks from a speech-to-text that detects it (one whose
 * model detects the language itself, such as an inference model ending in `:multi`), and the
 * language they write from their typed messages (`detectTextLanguage`, text_language.ts). It starts
 * from the language the conversation has (the token's or the remembered one, or none) and
 * adopts another one once {@link SPOKEN_LANGUAGE_CONFIRMATIONS} final transcripts in a row are
 * detected in it. A detection in the current language (same primary subtag: `es-MX` stays
 * `es-MX` when `es` is heard) confirms it and resets the count. Pure; one per conversation.
 *
 * Why: a participant whose token names no language (the Agents Playground) or the wrong one (a
 * browser set to English) is greeted in English; what they then speak is better evidence. The
 * adopted language is kept in the record and profile as heard, so their return is greeted in it
 * whatever the token says ({@link arrivalLanguage}), and the model and speech models are told it.
 */
export class SpokenLanguage {
  private candidate: string | null = null;
  private count = 0;

  constructor(private current: string | null) {}

  /** The conversation's language as learned so far. */
  get language(): string | null {
    return this.current;
  }

  /** The conversation's language changed another way (the participant picked one): detections are weighed against it from now on. */
  reset(tag: string | null): void {
    this.current = tag;
    this.candidate = null;
    this.count = 0;
  }

  /**
   * One final transcript's detected language (raw, as the speech-to-text reported it). Returns
   * the newly adopted language when this transcript confirms a change, otherwise null.
   */
  observe(detected: string | null | undefined): string | null {
    const tag = detectedLanguageOf(detected);
    if (tag === null) return null;
    if (this.current !== null && primaryLanguageOf(tag) === primaryLanguageOf(this.current)) {
      this.candidate = null;
      this.count = 0;
      return null;
    }
    if (this.candidate !== null && primaryLanguageOf(tag) === primaryLanguageOf(this.candidate)) this.count++;
    else {
      this.candidate = tag;
      this.count = 1;
    }
    if (this.count < SPOKEN_LANGUAGE_CONFIRMATIONS) return null;
    this.current = this.candidate;
    this.candidate = null;
    this.count = 0;
    return this.current;
  }
}
