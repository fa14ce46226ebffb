// demo: the simulated user, personas, held-out measurement, learning curve and chart behind
// `clawloop demo` and `npm run bench:learn`. Other folders import only this file.
export { checkReply, checkSchema, sentences, words, type Check, type CheckResult } from "./check.js";
export { personaSchema, parsePersona, loadPersona, listPersonas, personasDir, PersonaError, type Persona, type PersonaInput } from "./personas.js";
export { SimulatedUser, seededRandom, type Reaction, type ReactionKind } from "./user.js";
export { SidecarClient, type CallTags, type ChatReply, type Sampling } from "./client.js";
export { Evaluator, NEUTRAL_TEXT, perplexityChange, standardError, type Measurement, type Satisfaction } from "./evaluate.js";
export { learningCurveSvg, type ChartOptions } from "./chart.js";
export { firstReached, rateAfter, writeSummary, TARGET_RATE, type CurvePoint, type DemoSummary } from "./summary.js";
export { createPrinter, shorten, type Printer } from "./printer.js";
export { summaryTable, table } from "./report.js";
export { DEMO_SETTINGS, mergeSettings } from "./settings.js";
export { runDemo, runSettings, prepareRunDir, interactionsBefore, type DemoOptions, type DemoResult, type RunningLoops, type StartLoops, type InteractionRecord } from "./run.js";
