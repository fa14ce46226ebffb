// judges: rewards and hindsight hints from next states, and the judge loop. Other folders import
// only this file.
export { startJudgeLoop, FULL_SCAN_MS, type JudgeLoop, type JudgeLoopOptions } from "./loop.js";
export { createJudge, judgeEndpoint, ComposedJudge, JudgeConfigError, type CreateJudgeOptions } from "./judge.js";
export { RulesJudge, type RuleVerdict } from "./rules.js";
export { PrmJudge, type PrmOptions } from "./prm.js";
export { LogprobJudge, type LogprobOptions } from "./logprob.js";
export { OpenAIClient, EndpointError, normalizeBaseUrl, type ClientOptions } from "./client.js";
export { ModelName } from "./model-name.js";
export { buildJudgePrompt, defang, PRM_SYSTEM, LOGPROB_SYSTEM, type JudgePrompt } from "./prompt.js";
export { parseAnswer, majority } from "./votes.js";
export { selectHint, specificity, cutHint, HINT_MAX_CHARS } from "./hints.js";
export { directiveHint } from "./directives.js";
export { inputFromTurn, requestAndContext, type JudgeInput, type Evidence, type JudgeAction } from "./input.js";
export { chooseEvidence, isReady, isJudgeable } from "./evidence.js";
export { toJudgment, type Verdict, type Judge } from "./verdict.js";
export { loadCases, parseCases, inputFromCase, CasesError, type JudgeCase } from "./cases.js";
export { evaluate, summarize, formatReport, type EvalReport, type CaseResult } from "./eval.js";
export { readJudgeStatus, judgeStatusFile, type JudgeStatus } from "./status.js";
export { PatternError } from "./patterns.js";
