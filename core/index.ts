// core: the shared language of clawloop. Other folders import only this file.
export * from "./types.js";
export * from "./config.js";
export * from "./events.js";
export * from "./paths.js";
export * from "./train-pause.js";
export * from "./log.js";
export * from "./store/index.js";
export * from "./openai.js";
export * from "./chat-template.js";
export * from "./memory.js";
export * from "./process-alive.js";
