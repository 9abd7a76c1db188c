/**
 * The language of a typed message, among the languages greetings are written in, or null when
 * the message does not say clearly. Pure and deterministic: no model, no download.
 *
 * Why: a speech-to-text that detects the language teaches the agent the language a participant
 * speaks ({@link SpokenLanguage}); a participant who types (text mode, or the chat beside a call)
 * writes in theirs just as plainly, and without this their next visit is greeted in whatever
 * their token said, usually their browser's language.
 *
 * How: each word is looked up in short lists of function words that belong to one language only
 * ("the", "el", "je", "und"; words shared between two of them, such as "de", "la", "y", "es",
 * "die", "was" or "im", are in no list), a word in none of them counts when it has a letter only one of these
 * languages writes (ñ, ß, ç, à…), and an inverted ¿ or ¡ counts once for Spanish. A language is
 * the answer only with at least {@link MIN_TEXT_LANGUAGE_HITS} hits and at least twice as many as
 * any other: "ok", "gracias", a name or a quoted phrase in another language decide nothing.
 */
import type { GreetingLanguage } from './language.js';

/** Fewest hits for an answer: below that a message is too short to tell. */
export const MIN_TEXT_LANGUAGE_HITS = 3;

/** The part of a message that is read; the rest of a long paste adds nothing. */
export const TEXT_LANGUAGE_SCAN_CHARS = 1_000;

const FUNCTION_WORDS: Record<GreetingLanguage, readonly string[]> = {
  en: [
    'the', 'and', 'is', 'are', 'of', 'to', 'you', 'your', 'i', 'it', 'this', 'that', 'what', 'with', 'have', 'has', 'for', 'not',
    'but', 'be', 'would', 'can', 'could', 'should', 'my', 'we', 'they', 'she', 'how', 'why', 'where', 'when', 'which', 'there',
    'do', 'does', 'did', 'just', 'about', 'from', 'please', 'thanks', 'thank', 'hello', 'yes', 'want', 'need', 'like', 'know',
    'at', 'or', 'if', 'been', 'their', 'them', 'our', 'any', 'some', 'more', 'very', 'also', 'tell', 'thing',
  ],
  es: [
    'el', 'los', 'las', 'del', 'una', 'unos', 'unas', 'por', 'para', 'con', 'lo', 'su', 'sus', 'al', 'como', 'cómo', 'pero',
    'más', 'muy', 'yo', 'usted', 'ustedes', 'nosotros', 'estoy', 'está', 'esta', 'este', 'esto', 'están', 'estás', 'ser', 'hay',
    'tengo', 'tiene', 'quiero', 'puedes', 'puedo', 'gracias', 'hola', 'sí', 'qué', 'dónde', 'cuándo', 'cuál', 'porque', 'también',
    'ahora', 'mi', 'mis', 'eso', 'ese', 'esa', 'hacer', 'sobre', 'todo', 'nada', 'algo', 'ellos', 'fue', 'era', 'hoy', 'bueno',
  ],
  fr: [
    'le', 'les', 'et', 'est', 'une', 'je', 'il', 'elle', 'nous', 'vous', 'ils', 'elles', 'ce', 'cette', 'ces', 'qui', 'quoi',
    'pour', 'pas', 'ne', 'avec', 'sur', 'dans', 'mais', 'ou', 'où', 'au', 'aux', 'mon', 'ma', 'mes', 'ton', 'ta', 'votre', 'vos',
    'notre', 'leur', 'suis', 'sont', 'être', 'avoir', 'fait', 'faire', 'peux', 'peut', 'veux', 'voudrais', 'merci',
    'bonjour', 'salut', 'oui', 'très', 'aussi', 'pourquoi', 'quand', 'ça', 'moi', 'toi', 'c', 'j', 'l', 'qu', 'n', 'était',
  ],
  de: [
    'der', 'das', 'und', 'ist', 'nicht', 'ich', 'sie', 'er', 'wir', 'ein', 'eine', 'einen', 'einem', 'einer', 'dem', 'zu', 'mit',
    'auf', 'für', 'von', 'vom', 'sind', 'haben', 'habe', 'bin', 'bist', 'kann', 'können', 'möchte', 'wie', 'warum', 'wo', 'wann',
    'welche', 'aber', 'oder', 'auch', 'noch', 'nur', 'schon', 'sehr', 'mein', 'meine', 'dein', 'bitte', 'danke', 'hallo', 'ja',
    'nein', 'gut', 'guten', 'heute', 'jetzt', 'dass', 'wenn', 'weil', 'mir', 'dir', 'mich', 'dich', 'uns', 'euch', 'sich', 'kein',
    'nichts', 'geht', 'gibt', 'doch',
  ],
};

/** Letters only one of the four languages writes (é is shared; ü is German but for a few Spanish words). */
const LETTERS: Record<GreetingLanguage, RegExp | null> = {
  en: null,
  es: /[ñáíóú]/,
  fr: /[çœàèùâêîôûëïÿ]/,
  de: /[ßäöü]/,
};

const LANGUAGES = Object.keys(FUNCTION_WORDS) as GreetingLanguage[];

/** Word → the one language whose list holds it. */
const WORD_LANGUAGE: ReadonlyMap<string, GreetingLanguage> = (() => {
  const map = new Map<string, GreetingLanguage>();
  for (const lang of LANGUAGES) {
    for (const word of FUNCTION_WORDS[lang]) {
      if (map.has(word)) throw new Error(`function word "${word}" is listed for two languages`);
      map.set(word, lang);
    }
  }
  return map;
})();

/** Hits per language in `text` (exported for tests). */
export function textLanguageHits(text: string): Record<GreetingLanguage, number> {
  const hits: Record<GreetingLanguage, number> = { en: 0, es: 0, fr: 0, de: 0 };
  const scanned = text.slice(0, TEXT_LANGUAGE_SCAN_CHARS).normalize('NFC').toLowerCase();
  if (/[¿¡]/.test(scanned)) hits.es++;
  // Words: runs of letters (an apostrophe splits "c'est" into "c" and "est").
  for (const word of scanned.match(/\p{L}+/gu) ?? []) {
    const lang = WORD_LANGUAGE.get(word) ?? LANGUAGES.find((l) => LETTERS[l]?.test(word));
    if (lang !== undefined) hits[lang]++;
  }
  return hits;
}

/**
 * The language `text` is written in, or null when it does not say clearly (see the file header).
 * The answer is a primary language subtag (`es`), as a speech-to-text reports one.
 */
export function detectTextLanguage(text: string): GreetingLanguage | null {
  const hits = textLanguageHits(text);
  const ranked = [...LANGUAGES].sort((a, b) => hits[b] - hits[a]);
  const best = ranked[0] as GreetingLanguage;
  const second = hits[ranked[1] as GreetingLanguage];
  if (hits[best] < MIN_TEXT_LANGUAGE_HITS || hits[best] < 2 * second) return null;
  return best;
}
