// What `clawloop openclaw install` changes in OpenClaw's config, as pure functions of the config.
//
// The agent's model provider is owned by whoever registered it (a bundled plugin for vllm, sglang,
// ollama, …, or nobody for a custom one), and only the owner of a provider can wrap its stream
// function — which is how the plugin tags each model call. So the installer does not edit the
// user's provider in place: it adds a provider `clawloop` (owned by clawloop's plugin) that copies
// theirs with its base URL pointed at the sidecar, and moves the agent's model references from
// `<provider>/<model>` to `clawloop/<model>`. Their own provider entry is left as it was; the
// original base URL becomes the sidecar's upstream.
import { isObject, type JsonObject } from "./openclaw-config.js";

export const PLUGIN_ID = "clawloop";
export const PROVIDER_ID = "clawloop";

type ClawloopUpstreamKind = "auto" | "vllm" | "sglang" | "llamacpp" | "ollama" | "openai" | "clawloop";

/** Self-hosted providers OpenClaw ships, with their default base URL where it has one. */
const KNOWN_PROVIDERS: Record<string, { kind: ClawloopUpstreamKind; baseUrl: string | null; keyEnv: string | null }> = {
  vllm: { kind: "vllm", baseUrl: "http://127.0.0.1:8000/v1", keyEnv: "VLLM_API_KEY" },
  sglang: { kind: "sglang", baseUrl: "http://127.0.0.1:30000/v1", keyEnv: "SGLANG_API_KEY" },
  ollama: { kind: "ollama", baseUrl: "http://127.0.0.1:11434", keyEnv: "OLLAMA_API_KEY" },
  "llama-cpp": { kind: "llamacpp", baseUrl: null, keyEnv: "LLAMA_SERVER_API_KEY" },
  lmstudio: { kind: "auto", baseUrl: null, keyEnv: "LM_API_TOKEN" },
};

export class InstallRefusal extends Error {}

export interface InstallPlan {
  /** The provider the agent used, now routed through `clawloop`. */
  providerId: string;
  /** The original base URL: the sidecar's upstream. */
  upstream: string;
  upstreamKind: ClawloopUpstreamKind;
  /** The `models.providers.clawloop` entry. */
  provider: JsonObject;
  /** `plugins.entries.clawloop.config`. */
  pluginConfig: { sidecarUrl: string; dataDir: string };
  /** Model references moved, `vllm/qwen` → `clawloop/qwen`. */
  movedRefs: string[];
  warnings: string[];
}

export interface PlanOptions {
  /** The sidecar's base URL (no `/v1`). */
  sidecarUrl: string;
  dataDir: string;
  env?: NodeJS.ProcessEnv;
}

function get(obj: unknown, ...keys: string[]): unknown {
  let cur = obj;
  for (const k of keys) {
    if (!isObject(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

/** `agents.defaults.model` is a string or `{primary, fallbacks}`. */
function primaryOf(model: unknown): string | null {
  if (typeof model === "string") return model;
  if (isObject(model) && typeof model.primary === "string") return model.primary;
  return null;
}

function splitRef(ref: string): { provider: string; model: string } | null {
  const at = ref.indexOf("/");
  return at > 0 && at < ref.length - 1 ? { provider: ref.slice(0, at), model: ref.slice(at + 1) } : null;
}

const HOW_TO_ADD =
  "Add your model server as an OpenAI-compatible provider, e.g.\n" +
  '  openclaw config set models.providers.mymodel \'{"baseUrl":"http://127.0.0.1:8000/v1","apiKey":"local","api":"openai-completions","models":[{"id":"<model>","name":"<model>"}]}\' --strict-json\n' +
  "  openclaw models set mymodel/<model>\n" +
  "then run `clawloop openclaw install` again.";

export function planInstall(config: JsonObject, opts: PlanOptions): InstallPlan {
  const env = opts.env ?? process.env;
  const primary = primaryOf(get(config, "agents", "defaults", "model"));
  if (!primary) {
    throw new InstallRefusal(`OpenClaw has no default model (agents.defaults.model.primary), so there is no provider to route.\n${HOW_TO_ADD}`);
  }
  const ref = splitRef(primary);
  if (!ref) throw new InstallRefusal(`the default model "${primary}" is not a provider/model reference.\n${HOW_TO_ADD}`);
  if (ref.provider === PROVIDER_ID) {
    throw new InstallRefusal(`the agent already goes through clawloop (${primary}). To reinstall, run \`clawloop openclaw uninstall\` first.`);
  }
  if (get(config, "models", "providers", PROVIDER_ID) !== undefined) {
    throw new InstallRefusal(`OpenClaw's config already has a provider named "${PROVIDER_ID}"; rename it (clawloop needs that id) and try again.`);
  }

  const providerId = ref.provider;
  const known = KNOWN_PROVIDERS[providerId];
  const own = get(config, "models", "providers", providerId);
  if (own !== undefined && !isObject(own)) throw new InstallRefusal(`models.providers.${providerId} is not an object`);
  if (!own && !known) {
    throw new InstallRefusal(
      `the agent uses "${primary}", but "${providerId}" is neither a provider under models.providers nor a self-hosted ` +
        `provider clawloop knows (${Object.keys(KNOWN_PROVIDERS).join(", ")}). clawloop trains a model you serve yourself.\n${HOW_TO_ADD}`,
    );
  }
  const api = (own?.api as string | undefined) ?? (providerId === "ollama" ? "ollama" : "openai-completions");
  if (api !== "openai-completions" && api !== "ollama") {
    throw new InstallRefusal(
      `provider "${providerId}" uses OpenClaw's "${api}" API; clawloop's sidecar speaks the OpenAI chat-completions API ` +
        `(/v1/chat/completions), which vLLM, SGLang, llama.cpp, LM Studio and Ollama all serve.\n${HOW_TO_ADD}`,
    );
  }
  const upstream = (own?.baseUrl as string | undefined) ?? (own?.baseURL as string | undefined) ?? known?.baseUrl ?? null;
  if (!upstream) {
    throw new InstallRefusal(
      `provider "${providerId}" has no baseUrl in models.providers.${providerId}; set it to your server's URL ` +
        `(e.g. \`openclaw config set models.providers.${providerId}.baseUrl http://127.0.0.1:8080/v1\`) and try again.`,
    );
  }

  const warnings: string[] = [];
  let upstreamKind: ClawloopUpstreamKind = known?.kind ?? "auto";
  if (api === "ollama") {
    upstreamKind = "ollama";
    warnings.push(
      "OpenClaw will reach Ollama through its OpenAI-compatible API (/v1, via the sidecar) instead of the native one; " +
        "OpenClaw's docs warn that tool calling can be less reliable there.",
    );
  }
  const host = safeHost(upstream);
  if (host && !isLocalHost(host)) {
    warnings.push(`the model server ${upstream} is not on this machine; the sidecar can record it, but can only load adapters into a server it can reach.`);
  }

  const provider: JsonObject = { ...(own ?? {}) };
  delete provider.baseURL;
  provider.baseUrl = `${opts.sidecarUrl.replace(/\/+$/, "")}/v1`;
  provider.api = "openai-completions";
  if (provider.apiKey === undefined && provider.auth === undefined) {
    if (known?.keyEnv && env[known.keyEnv]) provider.apiKey = `\${${known.keyEnv}}`;
    else if (api === "ollama") provider.apiKey = "ollama-local";
    else {
      provider.apiKey = "clawloop-local";
      warnings.push(`provider "${providerId}" has no apiKey; the clawloop provider sends "clawloop-local" (fine for servers without authentication).`);
    }
  }
  const refs = modelRefsOf(config, providerId);
  if (!Array.isArray(provider.models) || provider.models.length === 0) {
    provider.models = [...new Set(refs.map((r) => r.slice(providerId.length + 1)))].map((id) => ({ id, name: id }));
  }

  return {
    providerId,
    upstream,
    upstreamKind,
    provider,
    pluginConfig: { sidecarUrl: opts.sidecarUrl.replace(/\/+$/, ""), dataDir: opts.dataDir },
    movedRefs: refs,
    warnings,
  };
}

/**
 * The config with the plan applied: the `clawloop` provider, the agent's model references moved to
 * it, and the plugin's entry (conversation hooks granted, its config). `loadPath` also links the
 * plugin by path, for when OpenClaw's own `plugins install --link` is not available.
 */
export function applyInstall(config: JsonObject, plan: InstallPlan, loadPath: string | null): JsonObject {
  const next = structuredClone(config);
  const models = ensureObject(next, "models");
  const providers = ensureObject(models, "providers");
  providers[PROVIDER_ID] = structuredClone(plan.provider);
  moveModelRefs(next, plan.providerId, PROVIDER_ID);

  const plugins = ensureObject(next, "plugins");
  const entries = ensureObject(plugins, "entries");
  const entry = isObject(entries[PLUGIN_ID]) ? (entries[PLUGIN_ID] as JsonObject) : {};
  entries[PLUGIN_ID] = {
    ...entry,
    enabled: true,
    hooks: { ...(isObject(entry.hooks) ? entry.hooks : {}), allowConversationAccess: true },
    config: { ...plan.pluginConfig },
  };
  if (loadPath) {
    const load = ensureObject(plugins, "load");
    const paths = Array.isArray(load.paths) ? (load.paths as unknown[]) : [];
    if (!paths.includes(loadPath)) load.paths = [...paths, loadPath];
  }
  return next;
}

/**
 * Undoes applyInstall on a config that changed since (so the saved original cannot simply be put
 * back): removes clawloop's provider and plugin entry and moves the model references back.
 */
export function revertInstall(config: JsonObject, providerId: string, loadPath: string | null): JsonObject {
  const next = structuredClone(config);
  const providers = get(next, "models", "providers");
  if (isObject(providers)) delete providers[PROVIDER_ID];
  moveModelRefs(next, PROVIDER_ID, providerId);
  const plugins = get(next, "plugins");
  if (isObject(plugins)) {
    if (isObject(plugins.entries)) {
      delete plugins.entries[PLUGIN_ID];
      if (Object.keys(plugins.entries).length === 0) delete plugins.entries;
    }
    if (loadPath && isObject(plugins.load) && Array.isArray(plugins.load.paths)) {
      plugins.load.paths = plugins.load.paths.filter((p) => p !== loadPath);
      if ((plugins.load.paths as unknown[]).length === 0) delete plugins.load.paths;
      if (Object.keys(plugins.load).length === 0) delete plugins.load;
    }
    if (Object.keys(plugins).length === 0) delete next.plugins;
  }
  return next;
}

/** Every model reference of the agents that names `provider`: defaults, fallbacks, per-model settings, per-agent models. */
export function modelRefsOf(config: JsonObject, provider: string): string[] {
  const refs: string[] = [];
  visitModelRefs(structuredClone(config), (ref) => {
    if (ref.startsWith(`${provider}/`)) refs.push(ref);
    return ref;
  });
  return [...new Set(refs)];
}

function moveModelRefs(config: JsonObject, from: string, to: string): void {
  visitModelRefs(config, (ref) => (ref.startsWith(`${from}/`) ? `${to}/${ref.slice(from.length + 1)}` : ref));
}

/** Calls `map` on each model reference in place (`agents.defaults` and each agent in `agents.list` / `agents.entries`). */
function visitModelRefs(config: JsonObject, map: (ref: string) => string): void {
  const agents = get(config, "agents");
  if (!isObject(agents)) return;
  const scopes: JsonObject[] = [];
  if (isObject(agents.defaults)) scopes.push(agents.defaults);
  if (Array.isArray(agents.list)) scopes.push(...agents.list.filter(isObject));
  if (isObject(agents.entries)) scopes.push(...Object.values(agents.entries).filter(isObject));
  for (const scope of scopes) {
    const model = scope.model;
    if (typeof model === "string") scope.model = map(model);
    else if (isObject(model)) {
      if (typeof model.primary === "string") model.primary = map(model.primary);
      if (Array.isArray(model.fallbacks)) model.fallbacks = model.fallbacks.map((f) => (typeof f === "string" ? map(f) : f));
    }
    if (isObject(scope.models)) {
      // Per-model settings are keyed by reference; keep their order.
      scope.models = Object.fromEntries(Object.entries(scope.models).map(([k, v]) => [map(k), v]));
    }
  }
}

function ensureObject(parent: JsonObject, key: string): JsonObject {
  if (!isObject(parent[key])) parent[key] = {};
  return parent[key] as JsonObject;
}

function safeHost(url: string): string | null {
  try {
    return new URL(url).hostname;
  } catch {
    return null;
  }
}

function isLocalHost(host: string): boolean {
  return (
    host === "localhost" ||
    host === "::1" ||
    host === "[::1]" ||
    host.startsWith("127.") ||
    host.startsWith("10.") ||
    host.startsWith("192.168.") ||
    /^172\.(1[6-9]|2\d|3[01])\./.test(host) ||
    host.endsWith(".local") ||
    host === "host.docker.internal"
  );
}
