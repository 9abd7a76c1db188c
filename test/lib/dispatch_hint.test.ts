import { describe, expect, it } from 'vitest';
import { encodeDispatchHint, hintMatches, parseDispatchHint } from '../../lib/dispatch_hint.js';

describe('dispatch hint', () => {
  it('round-trips through the dispatch metadata', () => {
    const meta = encodeDispatchHint({ identity: 'a}:{b 🦊', name: 'Ada', resumePolicy: 'AlwaysResume' });
    expect(parseDispatchHint(meta)).toEqual({ v: 1, identity: 'a}:{b 🦊', name: 'Ada', resumePolicy: 'AlwaysResume' });
  });

  it('reads anything else as no hint, without throwing', () => {
    for (const meta of [undefined, '', 'not json', '{}', '[]', 'null', '{"v":2,"identity":"x"}', '{"v":1,"identity":""}', '{"v":1,"identity":7}', '{"v":1}']) {
      expect(parseDispatchHint(meta)).toBeNull();
    }
  });

  it('matches only the participant it announced', () => {
    const hint = { v: 1 as const, identity: 'ada', name: 'Ada', resumePolicy: 'AlwaysFresh' };
    expect(hintMatches(hint, { identity: 'ada', name: 'Ada', resumePolicy: 'AlwaysFresh' })).toBe(true);
    expect(hintMatches(hint, { identity: 'bob', name: 'Ada', resumePolicy: 'AlwaysFresh' })).toBe(false);
    expect(hintMatches(hint, { identity: 'ada', name: 'Eve', resumePolicy: 'AlwaysFresh' })).toBe(false);
    expect(hintMatches(hint, { identity: 'ada', name: 'Ada' })).toBe(false);
    expect(hintMatches({ v: 1, identity: 'ada' }, { identity: 'ada', name: '' })).toBe(true);
    // The language attribute too: a greeting decided for one language must not reach another.
    expect(hintMatches({ v: 1, identity: 'ada', language: 'es' }, { identity: 'ada', language: 'es' })).toBe(true);
    expect(hintMatches({ v: 1, identity: 'ada', language: 'es' }, { identity: 'ada' })).toBe(false);
    expect(hintMatches({ v: 1, identity: 'ada' }, { identity: 'ada', language: 'fr' })).toBe(false);
    // And whether it was chosen: a chosen language outranks a remembered one, a browser's does not.
    expect(hintMatches({ v: 1, identity: 'ada', language: 'es', languageChosen: true }, { identity: 'ada', language: 'es', languageChosen: true })).toBe(true);
    expect(hintMatches({ v: 1, identity: 'ada', language: 'es', languageChosen: true }, { identity: 'ada', language: 'es' })).toBe(false);
    expect(hintMatches({ v: 1, identity: 'ada', language: 'es' }, { identity: 'ada', language: 'es', languageChosen: true })).toBe(false);
  });
});
