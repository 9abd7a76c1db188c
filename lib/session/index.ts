/** The session core: records, policy, decisions, greetings, lifecycle and history. */
export * from './record.js';
export * from './policy.js';
export * from './resume_policy.js';
export * from './greeting.js';
export * from './state.js';
export * from './history.js';
export * from './condense.js';
export * from './language.js';
