import { describe, expect, it } from 'vitest';
import { decodeSessionStatus, encodeSessionStatus, type SessionStatusMessage } from '../../lib/session_messages.js';

const base: SessionStatusMessage = { v: 1, type: 'session_status', sessionId: 's-1', state: 'Connected' };
const wire = (msg: object) => new TextEncoder().encode(JSON.stringify(msg));

describe('session status messages (pva.session)', () => {
  it('carry the conversation\'s language and whether it was heard spoken, through encode and decode', () => {
    const msg: SessionStatusMessage = { ...base, greeting: 'returning', language: 'es-MX', languageHeard: true };
    expect(decodeSessionStatus(encodeSessionStatus(msg))).toEqual(msg);
    expect(decodeSessionStatus(encodeSessionStatus(base))).toEqual(base);
  });

  it('a language that is not a canonical BCP 47 tag makes the message invalid, so a client never shows it', () => {
    for (const language of ['es_MX', 'es-mx', '', 'x-klingon', 'e'.repeat(40), '<b>es</b>']) {
      expect(decodeSessionStatus(wire({ ...base, language })), language).toBeUndefined();
    }
    expect(decodeSessionStatus(wire({ ...base, languageHeard: 'yes' }))).toBeUndefined();
  });

  it('anything that is not a status message decodes to undefined', () => {
    expect(decodeSessionStatus(new TextEncoder().encode('not json'))).toBeUndefined();
    expect(decodeSessionStatus(wire({ ...base, v: 2 }))).toBeUndefined();
  });
});
