import { describe, expect, it } from 'vitest';
import { renderGreeting, takenOverMessage, type GreetingChoice } from '../../../lib/session/greeting.js';
import { GREETING_LANGUAGES, SpokenLanguage } from '../../../lib/session/language.js';
import { MIN_TEXT_LANGUAGE_HITS, TEXT_LANGUAGE_SCAN_CHARS, detectTextLanguage, textLanguageHits } from '../../../lib/session/text_language.js';

describe('detectTextLanguage', () => {
  it.each([
    ['en', 'Hi, I would like to book a table for two tonight'],
    ['en', 'What is the weather like in Madrid this weekend?'],
    ['en', "Can you tell me where my order is? It's been a week."],
    ['en', 'im looking for a cheap flight to paris, any ideas'],
    ['es', 'Hola, ¿cómo estás? Quiero reservar una mesa para dos'],
    ['es', 'Necesito ayuda con mi pedido, no ha llegado todavía'],
    ['es', 'Me gustaría saber el precio de los billetes para el lunes'],
    ['es', 'pero eso no es lo que te pregunté'],
    ['fr', "Bonjour, je voudrais réserver une table pour ce soir"],
    ['fr', "C'est l'heure de partir, j'ai faim"],
    ['fr', 'Pourquoi mon colis est-il toujours en attente ?'],
    ['fr', "il y a un problème avec ma commande"],
    ['de', 'Ich möchte einen Tisch für zwei Personen reservieren'],
    ['de', 'Warum ist meine Bestellung noch nicht angekommen?'],
    ['de', 'Kannst du mir bitte helfen? Das funktioniert nicht'],
    ['de', 'Guten Morgen, wie geht es dir heute?'],
  ])('reads %s in "%s"', (lang, text) => {
    expect(detectTextLanguage(text)).toBe(lang);
  });

  it.each([
    '',
    'ok',
    'gracias',
    'merci beaucoup',
    'Danke!',
    '¿Sí?',
    'Paris',
    'de la',
    '12345 67',
    '👍👍👍',
    'Maria José Müller',
    'こんにちは、元気ですか',
    'Привет, как дела? Я хочу забронировать столик',
  ])('decides nothing from "%s": too short, a name, or another script', (text) => {
    expect(detectTextLanguage(text)).toBeNull();
  });

  it('does not take a quoted phrase for the language of the message', () => {
    // The question is English; the Spanish it quotes must not make it Spanish.
    expect(detectTextLanguage("How do you say 'dónde está la biblioteca' in Spanish?")).not.toBe('es');
    expect(detectTextLanguage('What does "je ne sais pas" mean in English, and how do you pronounce it?')).toBe('en');
  });

  it('needs a clear lead: a message half in two languages decides nothing', () => {
    const mixed = 'I would like to know, pero no sé cómo hacer eso';
    const hits = textLanguageHits(mixed);
    expect(hits.en).toBeGreaterThanOrEqual(MIN_TEXT_LANGUAGE_HITS);
    expect(hits.es).toBeGreaterThanOrEqual(MIN_TEXT_LANGUAGE_HITS);
    expect(detectTextLanguage(mixed)).toBeNull();
  });

  it('reads only the beginning of a long paste', () => {
    const english = 'Please tell me what this is about and why it is here. '.repeat(40);
    expect(english.length).toBeGreaterThan(TEXT_LANGUAGE_SCAN_CHARS);
    expect(detectTextLanguage(english + 'Ich möchte einen Tisch für zwei Personen. '.repeat(100))).toBe('en');
  });

  it('is case- and normalisation-blind (a decomposed accent is the same letter)', () => {
    expect(detectTextLanguage('HOLA, ¿CÓMO ESTÁS? QUIERO UNA MESA')).toBe('es');
    expect(detectTextLanguage('Hola, ¿co\u0301mo esta\u0301s? Quiero una mesa')).toBe('es');
  });
});

describe('typed messages through SpokenLanguage (the rule the agent applies)', () => {
  it('adopts a language after two clear messages in a row; a short or unclear one in between does not break the run', () => {
    const lang = new SpokenLanguage('en-US');
    expect(lang.observe(detectTextLanguage('Hola, quiero reservar una mesa para dos'))).toBeNull();
    expect(lang.observe(detectTextLanguage('gracias'))).toBeNull();
    expect(lang.observe(detectTextLanguage('¿Tienen mesa para el sábado por la noche?'))).toBe('es');
  });

  it('keeps the language when a message in it comes between two in another', () => {
    const lang = new SpokenLanguage('en-US');
    expect(lang.observe(detectTextLanguage('Bonjour, je voudrais une table pour ce soir'))).toBeNull();
    expect(lang.observe(detectTextLanguage('Sorry, I meant to write that in English, can you help me?'))).toBeNull();
    expect(lang.observe(detectTextLanguage("C'est pour deux personnes, merci"))).toBeNull();
    expect(lang.language).toBe('en-US');
  });
});

describe("the agent's own words in each language (greetings, the takeover message)", () => {
  const choices: GreetingChoice[] = [
    { kind: 'first_time' },
    { kind: 'welcome_back_brief', agoMs: 20_000 },
    { kind: 'returning', agoMs: 3 * 3_600_000, visitCount: 4, lastTopic: 'the trip' },
    { kind: 'known_fresh', agoMs: 5 * 86_400_000, visitCount: 4 },
  ];

  it.each(GREETING_LANGUAGES)('are never read as another language than %s', (lang) => {
    const texts = [...choices.map((c) => renderGreeting(c, 'Sam', lang)), takenOverMessage(lang)];
    for (const text of texts) expect([lang, null]).toContain(detectTextLanguage(text ?? ''));
    // Most of them are long enough to tell.
    expect(texts.filter((t) => detectTextLanguage(t ?? '') === lang).length).toBeGreaterThanOrEqual(3);
  });
});
