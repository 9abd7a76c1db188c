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

/** The instruction that tells the model the participant's language. */
export function languageInstruction(tag: string): string {
  return `The participant's language is "${tag}" (BCP 47): speak it with them, unless they switch to another language.`;
}
