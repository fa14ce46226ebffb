"""The PyTorch side of `npm run bench:train`: the same LoRA step as clawloop's engine, timed.

Benchmark-only (Python never runs on clawloop's product path). bench/train.ts runs this once per
configuration, in its own process, right after our engine's run of the same configuration, and
prints the two side by side. It can also be run by hand:

    .cache/pyvenv-torch/bin/python bench/train_torch.py --config '<ModelConfig JSON>' --tokens 512

What it does, matching bench/train.ts:
- the model: a LlamaForCausalLM / Qwen2ForCausalLM built from the engine's ModelConfig (the JSON
  bench/train.ts passes, from trainer/engine/testing/synthetic.ts), random float32 weights of the
  exact shape (only speed is measured), attention as transformers picks by default (SDPA) unless
  --attention says otherwise;
- LoRA through PEFT: rank 16, alpha 32, dropout 0, on q, k, v, o, gate, up, down; base frozen;
  B set to 0.01 as the engine bench does (so every gradient is non-trivial);
- one sequence: the engine's token ids ((i·7919 + 13) mod vocab), the last `--response` of them
  the response; the model sees all but the last token and only the response rows reach the
  LM head (logits_to_keep), as the engine's head does;
- train: forward, the engine's clipped policy-gradient loss (advantage 1, old log-prob −8,
  ε 0.2/0.28, weight 1/R per token), backward to the LoRA matrices;
- score: the same forward and log-probs under torch.no_grad();
- per-layer recomputation (transformers' gradient checkpointing) only with --checkpointing,
  which bench/train.ts passes where our engine ran per layer ("layered").

It prints one line `RESULT {json}` with median seconds over the repetitions (after a warm-up of
each), peak RSS and this process's own fp32 matmul peak on the bench's [512,896]×[896,4864] chain.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the engine's ModelConfig as JSON")
    p.add_argument("--tokens", type=int, required=True, help="prompt + response tokens (the model sees one fewer)")
    p.add_argument("--response", type=int, help="response tokens (default: a quarter of --tokens)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--checkpointing", action="store_true", help="per-layer recomputation in the train step")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument(
        "--attention",
        help="transformers' attention implementation (default: its own choice, SDPA, whose causal kernel skips"
        " the masked half of T×T; 'eager' computes the full masked T×T as our engine does)",
    )
    return p.parse_args()


def hf_config(c: dict):
    """A transformers config with exactly the engine config's shape."""
    from transformers import LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=c["vocabSize"],
        hidden_size=c["hiddenSize"],
        intermediate_size=c["intermediateSize"],
        num_hidden_layers=c["numLayers"],
        num_attention_heads=c["numHeads"],
        num_key_value_heads=c["numKvHeads"],
        head_dim=c["headDim"],
        rms_norm_eps=c["rmsNormEps"],
        rope_theta=c["ropeTheta"],
        max_position_embeddings=c["maxPositionEmbeddings"],
        tie_word_embeddings=c["tieWordEmbeddings"],
        hidden_act="silu",
        attention_dropout=0.0,
        use_cache=False,
    )
    arch = c["architecture"]
    if c.get("qkNorm") or c.get("ropeScaling"):
        raise SystemExit(f"train_torch.py: q/k norm and rope scaling are not mapped (config {arch}); the bench models have neither")
    if arch == "llama":
        return LlamaConfig(attention_bias=c["attentionBias"], mlp_bias=False, **common)
    if arch == "qwen2":
        if not c["attentionBias"]:
            raise SystemExit("train_torch.py: Qwen2 always has q/k/v biases; the config says it has none")
        return Qwen2Config(use_sliding_window=False, **common)
    raise SystemExit(f"train_torch.py: no mapping for architecture {arch!r}")


def matmul_peak(torch) -> float:
    """GFLOP/s of the bench's matmul chain (weights in [out, in] layout, as nn.Linear keeps them), mean over ~1 s."""
    M, K, N = 512, 896, 4864
    g = torch.Generator().manual_seed(0)
    x = torch.rand(M, K, generator=g) - 0.5
    w1 = (torch.rand(N, K, generator=g) - 0.5) * 0.05
    w2 = (torch.rand(K, N, generator=g) - 0.5) * 0.02
    F = torch.nn.functional

    def chain():
        h = x
        for _ in range(4):
            h = F.linear(F.linear(h, w1), w2)
        return h

    flops = 4 * 2 * (2 * M * K * N)
    with torch.no_grad():
        chain()
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.0 or runs < 2:
            chain()
            runs += 1
        return runs * flops / (time.perf_counter() - start) / 1e9


def main() -> None:
    args = parse_args()
    import torch
    import transformers
    import peft
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    c = json.loads(args.config)
    T = args.tokens
    R = args.response if args.response is not None else T // 4
    if not (0 < R < T):
        raise SystemExit(f"train_torch.py: response {R} must be within (0, {T})")

    peaks = [matmul_peak(torch)]
    t0 = time.perf_counter()
    # float32 throughout (from_config's default; .float() in case a version defaults otherwise).
    extra = {"attn_implementation": args.attention} if args.attention else {}
    base = AutoModelForCausalLM.from_config(hf_config(c), **extra).float()
    lora = LoraConfig(
        r=args.rank,
        lora_alpha=args.alpha,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, lora)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.01)
    if args.checkpointing:
        # Non-reentrant: gradients reach the LoRA matrices without the input needing requires_grad.
        # transformers 5 renamed the method (the old name still works, with a warning).
        if hasattr(base, "activation_checkpointing_enable"):
            base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # Training mode is what switches transformers' checkpointing on; every dropout here is 0.
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    setup_sec = time.perf_counter() - t0

    # The engine's item: T ids, the last R the response; the model sees all but the last token.
    ids = [(i * 7919 + 13) % c["vocabSize"] for i in range(T)]
    inputs = torch.tensor([ids[:-1]], dtype=torch.long)
    targets = torch.tensor(ids[T - R :], dtype=torch.long)
    advantages = torch.ones(R)
    old = torch.full((R,), -8.0)
    weights = torch.full((R,), 1.0 / R)
    eps_low, eps_high = 0.2, 0.28

    def logprobs() -> torch.Tensor:
        # Only the R rows that predict response tokens meet the LM head, as in the engine.
        logits = model(input_ids=inputs, logits_to_keep=R).logits[0]
        return torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None])[:, 0]

    def train_step() -> float:
        model.zero_grad(set_to_none=True)
        lp = logprobs()
        ratio = torch.exp(lp - old)
        clipped = ratio.clamp(1 - eps_low, 1 + eps_high)
        loss = (torch.maximum(-ratio * advantages, -clipped * advantages) * weights).sum()
        loss.backward()
        return loss.item()

    def score() -> torch.Tensor:
        with torch.no_grad():
            return logprobs()

    # The warm-up step doubles as a check that the step is the one we mean: every LoRA matrix gets
    # a gradient, and a layer's MLP starts twice (recomputation) exactly when asked to. (A pre-hook
    # inside the layer: transformers checkpoints `forward`, so hooks on the layer fire once, and
    # PyTorch stops a recomputation early once it has the tensors backward needs, so a post-hook on
    # the layer's last module may never fire.)
    layer_calls = []
    hook = base.model.layers[0].mlp.register_forward_pre_hook(lambda *_: layer_calls.append(1))
    t0 = time.perf_counter()
    train_step()
    first_step_sec = time.perf_counter() - t0
    hook.remove()
    # (A gradient may be all zero where every token's ratio is clipped; the work is the same.)
    if not all(p.grad is not None for p in trainable):
        raise SystemExit("train_torch.py: some LoRA matrix got no gradient")
    if len(layer_calls) != (2 if args.checkpointing else 1):
        raise SystemExit(f"train_torch.py: layer 0's MLP ran {len(layer_calls)} forward passes in a step (checkpointing={args.checkpointing})")
    score()

    score_times, train_times = [], []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        score()
        score_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        train_step()
        train_times.append(time.perf_counter() - t0)
    peaks.append(matmul_peak(torch))

    result = dict(
        torch=torch.__version__,
        transformers=transformers.__version__,
        peft=peft.__version__,
        attention=getattr(base.config, "_attn_implementation", None),
        threads=torch.get_num_threads(),
        checkpointing=args.checkpointing,
        tokens=T,
        response=R,
        loraParams=sum(p.numel() for p in trainable),
        setupSec=setup_sec,
        firstStepSec=first_step_sec,
        scoreSec=statistics.median(score_times),
        trainSec=statistics.median(train_times),
        scoreTimes=score_times,
        trainTimes=train_times,
        matmulPeakGflops=statistics.mean(peaks),
        # ru_maxrss is KiB on Linux.
        maxRssMiB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
