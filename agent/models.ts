/**
 * Chooses the STT / LLM / TTS for the configured model mode. Nothing here downloads at run
 * time: the VAD is the native Silero in `@livekit/local-inference`, and turn detection is
 * VAD-based (no cloud model) except in inference mode, where the cloud is in use anyway.
 */
import { inference, normalizeLanguage, type llm, type stt, type tts, type voice } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import { primaryLanguageOf } from '../lib/session/language.js';
import type { Config } from './config.js';
import { OfflineLLM } from './offline_llm.js';

/** What the `AgentSession` is built from. */
export interface Models {
  llm: llm.LLM | string;
  /**
   * The same model as `llm`, as an instance of its own, for background requests (condensing
   * the summary of older turns): agents-js counts an instance's errors against the conversation
   * using it. Undefined without a real model (offline).
   */
  backgroundLlm?: llm.LLM;
  stt?: stt.STT | string;
  tts?: tts.TTS | string;
  /** Extra `AgentSession` options for this mode. */
  sessionOptions: Partial<voice.AgentSessionOptions>;
  /** A short, non-secret description for logs. */
  label: string;
  /**
   * Tells the voice models the participant's language (a BCP 47 tag), before the conversation
   * starts: the OpenAI STT otherwise transcribes everything as English, and LiveKit Inference's
   * STT listens for the language its model string names (`deepgram/nova-3:en` by default) and
   * its TTS speaks as its default language. Undefined in text mode, and with OpenAI's detecting
   * STT, where there is nothing to tell.
   */
  useLanguage?: (tag: string) => void;
  /**
   * True when the STT detects the language spoken itself (LiveKit Inference with a model string
   * ending in `:multi`; OpenAI with `OPENAI_STT_DETECT_LANGUAGE=true`), so the language its final
   * transcripts report is evidence of what the participant speaks (see `SpokenLanguage`). Any
   * other STT reports the language it was told.
   */
  sttDetectsLanguage?: boolean;
}

/** Builds the models for `config`. Pure except for constructing plugin objects. */
export function buildModels(config: Config): Models {
  const text = config.io === 'text';
  // Text mode builds no STT/TTS/VAD at all and needs no turn detector.
  const textOnly: Partial<voice.AgentSessionOptions> = { vad: null, turnHandling: { turnDetection: null } };
  const localVoice: Partial<voice.AgentSessionOptions> = {
    turnHandling: { turnDetection: 'vad', interruption: { mode: 'vad' } },
  };
  switch (config.modelMode) {
    case 'offline':
      return { llm: new OfflineLLM(), sessionOptions: textOnly, label: 'offline (text)' };
    case 'openai': {
      const o = config.openai!;
      const common = { apiKey: o.apiKey, ...(o.baseURL ? { baseURL: o.baseURL } : {}) };
      // One instance for the conversation, another for background requests (see `backgroundLlm`).
      const newLlm = () => new openai.LLM({ ...common, model: o.model });
      const model = newLlm();
      const backgroundLlm = newLlm();
      if (text) return { llm: model, backgroundLlm, sessionOptions: textOnly, label: `openai ${o.model} (text)` };
      // Detecting: never told a language (telling it one would end the detection); OpenAI's TTS
      // speaks the language of its text, so there is nothing else to tell.
      const detects = o.sttDetectsLanguage;
      const stt = new openai.STT({ ...common, ...(detects ? { detectLanguage: true } : {}) });
      return {
        llm: model,
        backgroundLlm,
        stt,
        ...(detects ? { sttDetectsLanguage: true } : { useLanguage: (tag: string) => stt.updateOptions({ language: primaryLanguageOf(tag) }) }),
        tts: new openai.TTS(common),
        sessionOptions: localVoice,
        label: `openai ${o.model} (voice)`,
      };
    }
    case 'inference': {
      const i = config.inference;
      const auth = { apiKey: i.apiKey, apiSecret: i.apiSecret };
      const newLlm = () => new inference.LLM({ model: i.llm, ...auth });
      const llmModel = newLlm();
      const backgroundLlm = newLlm();
      if (text) return { llm: llmModel, backgroundLlm, sessionOptions: textOnly, label: `inference ${i.llm} (text)` };
      const stt = new inference.STT({ model: i.stt, ...auth });
      const tts = new inference.TTS({ model: i.tts, ...auth });
      // A model string naming `multi` detects the language itself; anything else is told.
      const sttDetects = i.stt.endsWith(':multi');
      return {
        llm: llmModel,
        backgroundLlm,
        stt,
        tts,
        useLanguage: (tag) => {
          const language = normalizeLanguage(primaryLanguageOf(tag));
          if (!sttDetects) stt.updateOptions({ language });
          tts.updateOptions({ language });
        },
        sttDetectsLanguage: sttDetects,
        sessionOptions: {},
        label: `inference ${i.llm} (voice)`,
      };
    }
  }
}
