import { describe, expect, it } from "vitest";
import { applyInstall, InstallRefusal, modelRefsOf, planInstall, revertInstall } from "./plan.js";

const opts = { sidecarUrl: "http://127.0.0.1:11435", dataDir: "/data", env: {} };

function custom(extra: Record<string, unknown> = {}) {
  return {
    models: {
      mode: "merge",
      providers: {
        mylocal: { baseUrl: "http://127.0.0.1:8000/v1", apiKey: "sk-local", api: "openai-completions", models: [{ id: "qwen", name: "Qwen" }] },
        openai: { baseUrl: "https://api.openai.com/v1", api: "openai-responses", apiKey: "x" },
      },
    },
    agents: {
      defaults: {
        model: { primary: "mylocal/qwen", fallbacks: ["openai/gpt-5.4", "mylocal/qwen-small"] },
        models: { "mylocal/qwen": { params: { temperature: 0.2 } }, "openai/gpt-5.4": {} },
      },
      list: [{ id: "work", model: "mylocal/qwen" }],
    },
    ...extra,
  };
}

describe("planInstall", () => {
  it("routes a custom OpenAI-compatible provider: copy pointed at the sidecar, original base URL upstream", () => {
    const plan = planInstall(custom(), opts);
    expect(plan.providerId).toBe("mylocal");
    expect(plan.upstream).toBe("http://127.0.0.1:8000/v1");
    expect(plan.upstreamKind).toBe("auto");
    expect(plan.provider).toEqual({ baseUrl: "http://127.0.0.1:11435/v1", apiKey: "sk-local", api: "openai-completions", models: [{ id: "qwen", name: "Qwen" }] });
    expect(plan.movedRefs.sort()).toEqual(["mylocal/qwen", "mylocal/qwen-small"]);
    expect(plan.warnings).toEqual([]);
  });

  it("routes OpenClaw's bundled vllm provider from its defaults when the config has no entry for it", () => {
    const config = { agents: { defaults: { model: "vllm/Qwen/Qwen3-8B" } } };
    const plan = planInstall(config, { ...opts, env: { VLLM_API_KEY: "k" } });
    expect(plan).toMatchObject({ providerId: "vllm", upstream: "http://127.0.0.1:8000/v1", upstreamKind: "vllm" });
    expect(plan.provider).toEqual({
      baseUrl: "http://127.0.0.1:11435/v1",
      api: "openai-completions",
      apiKey: "${VLLM_API_KEY}",
      models: [{ id: "Qwen/Qwen3-8B", name: "Qwen/Qwen3-8B" }],
    });
    const next = applyInstall(config, plan, null);
    expect(next).toMatchObject({ agents: { defaults: { model: "clawloop/Qwen/Qwen3-8B" } } });
  });

  it("moves Ollama to its OpenAI-compatible API through the sidecar, and says so", () => {
    const plan = planInstall(
      { models: { providers: { ollama: { baseUrl: "http://127.0.0.1:11434", api: "ollama" } } }, agents: { defaults: { model: { primary: "ollama/llama3.2" } } } },
      opts,
    );
    expect(plan).toMatchObject({ upstream: "http://127.0.0.1:11434", upstreamKind: "ollama" });
    expect(plan.provider).toMatchObject({ api: "openai-completions", apiKey: "ollama-local" });
    expect(plan.warnings.join(" ")).toMatch(/OpenAI-compatible API/);
  });

  it("refuses, saying what to do, when there is nothing it can route", () => {
    const cases: [unknown, RegExp][] = [
      [{}, /no default model/],
      [{ agents: { defaults: { model: "gpt" } } }, /not a provider\/model reference/],
      [{ agents: { defaults: { model: "openai/gpt-5.4" } } }, /neither a provider under models.providers nor a self-hosted provider/],
      [{ models: { providers: { cloud: { baseUrl: "https://x", api: "anthropic-messages" } } }, agents: { defaults: { model: "cloud/claude" } } }, /"anthropic-messages" API/],
      [{ models: { providers: { lmstudio: { api: "openai-completions" } } }, agents: { defaults: { model: "lmstudio/m" } } }, /has no baseUrl/],
      [{ agents: { defaults: { model: "clawloop/qwen" } } }, /already goes through clawloop/],
      [{ models: { providers: { clawloop: {}, mylocal: { baseUrl: "http://x/v1" } } }, agents: { defaults: { model: "mylocal/q" } } }, /already has a provider named "clawloop"/],
    ];
    for (const [config, why] of cases) {
      expect(() => planInstall(config as Record<string, unknown>, opts)).toThrow(InstallRefusal);
      expect(() => planInstall(config as Record<string, unknown>, opts)).toThrow(why);
    }
    // Every refusal about a missing or unusable provider shows how to add one.
    expect(() => planInstall({ agents: { defaults: { model: "openai/gpt" } } }, opts)).toThrow(/openclaw config set models\.providers\.mymodel/);
  });

  it("warns when the model server is not on this machine", () => {
    const config = custom();
    (config.models.providers.mylocal as { baseUrl: string }).baseUrl = "https://gpu.example.com/v1";
    expect(planInstall(config, opts).warnings.join(" ")).toMatch(/not on this machine/);
  });
});

describe("applyInstall / revertInstall", () => {
  it("adds the provider, moves only that provider's references, grants the hooks and configures the plugin", () => {
    const config = custom({ plugins: { entries: { other: { enabled: true } } } });
    const next = applyInstall(config, planInstall(config, opts), "/pkg/plugin");
    expect(next.agents).toEqual({
      defaults: {
        model: { primary: "clawloop/qwen", fallbacks: ["openai/gpt-5.4", "clawloop/qwen-small"] },
        models: { "clawloop/qwen": { params: { temperature: 0.2 } }, "openai/gpt-5.4": {} },
      },
      list: [{ id: "work", model: "clawloop/qwen" }],
    });
    expect((next.models as { providers: Record<string, unknown> }).providers.mylocal).toEqual(custom().models.providers.mylocal);
    expect(next.plugins).toEqual({
      entries: {
        other: { enabled: true },
        clawloop: { enabled: true, hooks: { allowConversationAccess: true }, config: { sidecarUrl: "http://127.0.0.1:11435", dataDir: "/data" } },
      },
      load: { paths: ["/pkg/plugin"] },
    });
    expect(modelRefsOf(next, "mylocal")).toEqual([]);
    // The input is not modified.
    expect(config).toEqual(custom({ plugins: { entries: { other: { enabled: true } } } }));
  });

  it("reverts to the same config, also after unrelated changes the user made since", () => {
    const config = custom();
    const installed = applyInstall(config, planInstall(config, opts), "/pkg/plugin");
    expect(revertInstall(installed, "mylocal", "/pkg/plugin")).toEqual(config);
    (installed.agents as { defaults: Record<string, unknown> }).defaults.thinkingDefault = "low";
    const reverted = revertInstall(installed, "mylocal", "/pkg/plugin");
    expect((reverted.agents as { defaults: Record<string, unknown> }).defaults.thinkingDefault).toBe("low");
    expect(reverted.plugins).toBeUndefined();
    expect((reverted.models as { providers: Record<string, unknown> }).providers.clawloop).toBeUndefined();
  });
});
