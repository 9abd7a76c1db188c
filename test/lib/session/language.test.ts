import { describe, expect, it } from 'vitest';
import { describeAgo, renderGreeting, takenOverMessage } from '../../../lib/session/greeting.js';
import { rejectMessage } from '../../../lib/session/resume_policy.js';
import { arrivalLanguage, detectedLanguageOf, greetingLanguageOf, languageInstruction, parseLanguageTag, SpokenLanguage } from '../../../lib/session/language.js';

describe('the participant\'s language', () => {
  it('accepts well-formed BCP 47 tags in canonical form, and nothing else', () => {
    expect(parseLanguageTag('es')).toBe('es');
    expect(parseLanguageTag(' es-mx ')).toBe('es-MX');
    expect(parseLanguageTag('zh-hant-tw')).toBe('zh-Hant-TW');
    expect(parseLanguageTag('EN-gb')).toBe('en-GB');
    for (const bad of [undefined, null, '', '   ', 'e', 'english', 'es_MX', 'es-', '-es', 'x-private', 'es-MX-\u0000', 'es MX', '"es"', `es-${'a'.repeat(40)}`, 'de-1234567890']) {
      expect(parseLanguageTag(bad)).toBeNull();
    }
  });

  it('is greeted in its language where greetings exist (by primary subtag), else in English', () => {
    expect(['es-MX', 'fr-CA', 'de', 'en-GB', 'pt-BR', 'ja', null].map(greetingLanguageOf)).toEqual(['es', 'fr', 'de', 'en', 'en', 'en', 'en']);
  });

  it('renders every greeting kind in Spanish, French and German, with name, time and topic', () => {
    const returning = { kind: 'returning' as const, agoMs: 3 * 3_600_000, visitCount: 3, lastTopic: 'el router' };
    expect(renderGreeting({ kind: 'first_time' }, 'Ana', 'es-MX')).toBe('¡Hola, Ana! Me alegra que estés aquí. ¿En qué puedo ayudarte hoy?');
    expect(renderGreeting({ kind: 'welcome_back_brief', agoMs: 20_000 }, null, 'es')).toBe('Hola de nuevo. Sigamos donde lo dejamos.');
    expect(renderGreeting(returning, 'Ana', 'es')).toBe('¡Hola de nuevo, Ana! Han pasado 3 horas y esta es tu visita número 3. La última vez hablamos de «el router». ¿Seguimos?');
    expect(renderGreeting({ kind: 'known_fresh', agoMs: 86_400_000, visitCount: 2 }, null, 'es')).toBe('¡Qué gusto verte otra vez! Ha pasado un día. ¿De qué te gustaría hablar hoy?');
    expect(renderGreeting({ ...returning, visitCount: 1, lastTopic: 'la box' }, 'Luc', 'fr-FR')).toBe('Bon retour, Luc ! Cela fait 3 heures, et c\'est votre 1re visite. La dernière fois, nous avons parlé de « la box ». On continue ?');
    expect(renderGreeting({ kind: 'first_time' }, null, 'fr')).toBe('Bonjour ! Je suis ravi que vous soyez là. Comment puis-je vous aider aujourd\'hui ?');
    expect(renderGreeting({ ...returning, lastTopic: null }, 'Jan', 'de-AT')).toBe('Willkommen zurück, Jan! Es ist 3 Stunden her, und das ist Ihr 3. Besuch. Wollen wir weitermachen?');
    expect(renderGreeting({ kind: 'known_fresh', agoMs: 60_000, visitCount: 5 }, null, 'de')).toBe('Schön, Sie wiederzusehen! Es ist eine Minute her. Worüber möchten Sie heute sprechen?');
    expect(renderGreeting({ kind: 'first_time' }, 'Ana', 'pt-BR')).toBe("Hello, Ana! I'm glad you're here. How can I help you today?");
    expect(renderGreeting({ kind: 'none', why: 'short_drop' }, 'Ana', 'es')).toBeNull();
  });

  it('words how long ago in the language', () => {
    expect([10_000, 60_000, 5 * 60_000, 3_600_000, 2 * 86_400_000].map((ms) => describeAgo(ms, 'fr'))).toEqual(['quelques secondes', 'une minute', '5 minutes', 'une heure', '2 jours']);
    expect(describeAgo(2 * 86_400_000, 'de')).toBe('2 Tage');
    expect(describeAgo(2 * 86_400_000)).toBe('2 days');
  });

  it('says the other messages a participant hears in the language too: a failed AlwaysResume, a takeover', () => {
    expect(rejectMessage({ kind: 'reject', why: 'expired' }, 'es')).toBe('Tu conversación anterior ha caducado y no se puede reanudar. Por favor, inicia una nueva sesión.');
    expect(rejectMessage({ kind: 'reject', why: 'store_unavailable' }, 'de-CH')).toMatch(/^Ihr vorheriges Gespräch kann gerade nicht geladen werden/);
    expect(rejectMessage({ kind: 'reject', why: 'record_tampered' }, 'fr')).toMatch(/^Votre conversation précédente n'a pas pu être restaurée/);
    expect(rejectMessage({ kind: 'reject', why: 'expired' })).toMatch(/^Your previous conversation has expired/);
    expect(takenOverMessage('fr-FR')).toBe('Cette conversation continue dans une autre fenêtre, je quitte donc celle-ci.');
    expect(takenOverMessage(null)).toBe('This conversation has continued in another window, so I am leaving this one.');
  });

  it('tells the model the language', () => {
    expect(languageInstruction('es-MX')).toBe('The participant\'s language is "es-MX" (BCP 47): speak it with them, unless they switch to another language.');
  });

  it('starts a conversation in the language heard spoken, else the token\'s, else the remembered one; a kiosk only in the token\'s', () => {
    const heard = { language: 'es', languageHeard: true };
    const given = { language: 'de', languageHeard: false };
    const own = (language: string | null, h = false, c = false) => ({ language, heard: h, chosen: c });
    expect(arrivalLanguage('en-US', heard, true)).toEqual(own('es', true));
    expect(arrivalLanguage(null, heard, true)).toEqual(own('es', true));
    expect(arrivalLanguage('es-MX', heard, true)).toEqual(own('es-MX', true));
    expect(arrivalLanguage('en-US', given, true)).toEqual(own('en-US'));
    expect(arrivalLanguage(null, given, true)).toEqual(own('de'));
    expect(arrivalLanguage(null, { language: null, languageHeard: true }, true)).toEqual(own(null));
    expect(arrivalLanguage('fr', null, true)).toEqual(own('fr'));
    expect(arrivalLanguage('fr', heard, false)).toEqual(own('fr'));
    expect(arrivalLanguage(null, heard, false)).toEqual(own(null));
  });

  it('a language the participant chose outranks everything, and is remembered as theirs like one heard spoken', () => {
    const heard = { language: 'es', languageHeard: true };
    const chosenEarlier = { language: 'fr', languageChosen: true };
    const own = (language: string | null, h = false, c = false) => ({ language, heard: h, chosen: c });
    // Their pick wins over what they were heard speaking, over a remembered pick, and in a kiosk (it is the token's).
    expect(arrivalLanguage('de', heard, true, true)).toEqual(own('de', false, true));
    expect(arrivalLanguage('de', chosenEarlier, true, true)).toEqual(own('de', false, true));
    expect(arrivalLanguage('de', null, false, true)).toEqual(own('de', false, true));
    // A remembered pick outranks a browser's language on another device, and a token without one.
    expect(arrivalLanguage('en-US', chosenEarlier, true)).toEqual(own('fr', false, true));
    expect(arrivalLanguage(null, chosenEarlier, true)).toEqual(own('fr', false, true));
    expect(arrivalLanguage('fr-CA', chosenEarlier, true)).toEqual(own('fr-CA', false, true));
    // A kiosk reveals no remembered pick; "chosen" with no language is no choice.
    expect(arrivalLanguage('en-US', chosenEarlier, false)).toEqual(own('en-US'));
    expect(arrivalLanguage(null, chosenEarlier, true, true)).toEqual(own('fr', false, true));
    expect(arrivalLanguage(null, null, true, true)).toEqual(own(null));
  });

  it('adopts a detected language only after two final transcripts in a row agree on it', () => {
    const spoken = new SpokenLanguage(null);
    expect(spoken.observe('es')).toBeNull();
    expect(spoken.observe('es')).toBe('es');
    expect(spoken.language).toBe('es');
    // One stray detection does not switch; a detection of the current language resets the count.
    expect(spoken.observe('pt')).toBeNull();
    expect(spoken.observe('es')).toBeNull();
    expect(spoken.observe('pt')).toBeNull();
    expect(spoken.language).toBe('es');
    // Two in a row that disagree with each other do not switch either.
    expect(spoken.observe('fr')).toBeNull();
    expect(spoken.observe('de')).toBeNull();
    expect(spoken.observe('de')).toBe('de');
    // A language set another way (a pick): detections of it now confirm it, a pending candidate is dropped.
    expect(spoken.observe('it')).toBeNull();
    spoken.reset('fr');
    expect(spoken.language).toBe('fr');
    expect(spoken.observe('it')).toBeNull(); // the count starts again
    expect(spoken.observe('it')).toBe('it');
    spoken.reset('fr');
    expect(spoken.observe('fr')).toBeNull(); // a detection of the pick confirms it
  });

  it('keeps the arrival\'s more precise tag when the same language is heard, and ignores what names no language', () => {
    const spoken = new SpokenLanguage('es-MX');
    for (const heard of ['es', 'ES', 'es-ES', 'multi', '', null, undefined, 'und', 'x-klingon', 'español']) expect(spoken.observe(heard)).toBeNull();
    expect(spoken.language).toBe('es-MX');
    expect(spoken.observe('en-gb')).toBeNull();
    expect(spoken.observe('en')).toBe('en-GB');
    expect([detectedLanguageOf('pt-br'), detectedLanguageOf('multi'), detectedLanguageOf('und')]).toEqual(['pt-BR', null, null]);
  });
});

