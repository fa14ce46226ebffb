// Constrained output with node-llama-cpp's JSON-schema grammars: forced tool calls and
// `response_format`. Each returns a factory, since a grammar's evaluation state belongs to one
// generation. Generation stops when the JSON value is complete (see generate.ts).
import { LlamaGrammarEvaluationState, LlamaJsonSchemaGrammar, type GbnfJsonSchema, type LlamaGrammar } from "node-llama-cpp";
import type { Engine } from "./engine.js";
import { badRequest } from "./errors.js";

export type GrammarFactory = () => LlamaGrammarEvaluationState;

export interface ToolDef {
  type: "function";
  function: { name: string; parameters?: Record<string, unknown> };
}

export type ToolChoice = "none" | "auto" | "required" | { type: "function"; function: { name: string } } | null | undefined;

const ANY_OBJECT: GbnfJsonSchema = { type: "object", additionalProperties: true };

function jsonGrammar(engine: Engine, schema: GbnfJsonSchema): LlamaGrammar {
  return new LlamaJsonSchemaGrammar<GbnfJsonSchema>(engine.llama, schema);
}

/**
 * A client's JSON schema as node-llama-cpp's type. Unchecked on purpose: its grammar builder checks
 * the schema itself and throws on what it does not understand, which the callers below catch.
 */
const clientSchema = (schema: object): GbnfJsonSchema => schema as GbnfJsonSchema;

function factory(engine: Engine, grammar: LlamaGrammar): GrammarFactory {
  return () => new LlamaGrammarEvaluationState({ model: engine.model, grammar });
}

/**
 * tool_choice "required" or a named function: the output is one `{"name", "arguments"}` object
 * for an offered tool (the caller puts `<tool_call>` before it). null for "auto"/"none".
 */
export function forcedToolCallGrammar(engine: Engine, tools: ToolDef[], choice: ToolChoice): GrammarFactory | null {
  if (choice !== "required" && (typeof choice !== "object" || choice === null)) return null;
  let candidates = tools;
  if (typeof choice === "object") {
    candidates = tools.filter((t) => t.function.name === choice.function.name);
    if (!candidates.length) throw badRequest(`tool_choice names '${choice.function.name}', which is not among the tools`, "tool_choice");
  }
  const build = (generic: boolean): LlamaGrammar => {
    const options = candidates.map((t): GbnfJsonSchema => ({
      type: "object",
      properties: { name: { const: t.function.name }, arguments: generic || !t.function.parameters ? ANY_OBJECT : clientSchema(t.function.parameters) },
    }));
    return jsonGrammar(engine, options.length === 1 ? options[0]! : { oneOf: options });
  };
  try {
    return factory(engine, build(false));
  } catch {
    // A parameters schema beyond what node-llama-cpp's JSON grammar understands: still one call of
    // one of these tools, with any object as arguments.
    return factory(engine, build(true));
  }
}

export interface ResponseFormat {
  type: "text" | "json_object" | "json_schema";
  json_schema?: unknown;
}

/** OpenAI's `response_format`: any JSON object, or one that fits the given schema. */
export function responseFormatGrammar(engine: Engine, format: ResponseFormat | null | undefined): GrammarFactory | null {
  if (!format || format.type === "text") return null;
  if (format.type === "json_object") return factory(engine, jsonGrammar(engine, ANY_OBJECT));
  const schema = (format.json_schema as { schema?: unknown } | undefined)?.schema;
  if (typeof schema !== "object" || schema === null) throw badRequest("response_format.json_schema.schema must be a JSON schema object", "response_format");
  try {
    return factory(engine, jsonGrammar(engine, clientSchema(schema)));
  } catch (err) {
    throw badRequest(`response_format: this JSON schema is not supported: ${(err as Error).message}`, "response_format");
  }
}
