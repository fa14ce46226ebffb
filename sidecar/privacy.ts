// Keeps credentials out of the store: strings in recorded text that look like API keys, tokens or
// private keys are replaced by `[MASKED:<kind>]`. Headers are never recorded at all (only
// `traceparent`), so the client's `Authorization` and upstream keys cannot reach the store.

interface SecretPattern {
  name: string;
  re: RegExp;
  /** Keep this prefix group (e.g. "Bearer ") in front of the mask. */
  keepPrefix?: boolean;
}

const BUILTIN: SecretPattern[] = [
  { name: "private-key", re: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----/g },
  { name: "openai-key", re: /\bsk-(?:proj-|ant-(?:api\d+-)?|svcacct-|admin-)?[A-Za-z0-9_-]{20,}/g },
  { name: "stripe-key", re: /\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}/g },
  { name: "github-token", re: /\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})/g },
  { name: "gitlab-token", re: /\bglpat-[A-Za-z0-9_-]{20,}/g },
  { name: "aws-access-key", re: /\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b/g },
  { name: "aws-secret", re: /\baws_(?:secret_access_key|session_token)\s*[:=]\s*["']?[A-Za-z0-9/+=]{30,}/gi },
  { name: "google-key", re: /\bAIza[0-9A-Za-z_-]{35}/g },
  { name: "slack-token", re: /\bxox[abposr]-[A-Za-z0-9-]{10,}/g },
  { name: "huggingface-token", re: /\bhf_[A-Za-z0-9]{30,}/g },
  { name: "jwt", re: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g },
  { name: "bearer", re: /(\b[Bb]earer\s+)[A-Za-z0-9._~+/-]{16,}=*/g, keepPrefix: true },
  {
    name: "secret-assignment",
    re: /(\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|password)["']?\s*[:=]\s*["']?)[A-Za-z0-9_\-./+=]{16,}/gi,
    keepPrefix: true,
  },
];

/** Every built-in pattern contains one of these; text without any is skipped in one pass. */
const TRIGGERS = /sk-|[srp]k_(?:live|test)_|gh[pousr]_|github_pat_|glpat-|A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)|aws_|AIza|xox[abposr]-|hf_|eyJ|bearer|PRIVATE KEY|api[_-]?key|secret|access[_-]?token|auth[_-]?token|password/i;

export interface MaskResult<T> {
  value: T;
  hits: number;
}

export class SecretMasker {
  /** Configured patterns (`sidecar.secretPatterns`), always run. */
  private readonly extra: SecretPattern[];

  constructor(
    readonly enabled: boolean,
    extraPatterns: string[] = [],
  ) {
    const extra = extraPatterns.map((src, i) => {
      try {
        return { name: `custom-${i + 1}`, re: new RegExp(src, "g") };
      } catch (err) {
        throw new Error(`sidecar.secretPatterns[${i}] is not a valid regular expression: ${(err as Error).message}`);
      }
    });
    this.extra = extra;
  }

  maskString(s: string): MaskResult<string> {
    if (!this.enabled || s.length < 16) return { value: s, hits: 0 };
    let hits = 0;
    let out = s;
    const patterns = TRIGGERS.test(s) ? [...BUILTIN, ...this.extra] : this.extra;
    for (const p of patterns) {
      p.re.lastIndex = 0;
      if (!p.re.test(out)) continue;
      p.re.lastIndex = 0;
      out = out.replace(p.re, (...m: unknown[]) => {
        hits++;
        const prefix = p.keepPrefix && typeof m[1] === "string" ? m[1] : "";
        return `${prefix}[MASKED:${p.name}]`;
      });
    }
    return { value: out, hits };
  }

  /** Masks every string inside a JSON-like value (returns a copy only where something changed). */
  maskDeep<T>(value: T): MaskResult<T> {
    if (!this.enabled) return { value, hits: 0 };
    let hits = 0;
    const walk = (v: unknown): unknown => {
      if (typeof v === "string") {
        const r = this.maskString(v);
        hits += r.hits;
        return r.value;
      }
      if (Array.isArray(v)) {
        let changed = false;
        const out = v.map((x) => {
          const y = walk(x);
          if (y !== x) changed = true;
          return y;
        });
        return changed ? out : v;
      }
      if (v && typeof v === "object") {
        let changed = false;
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(v)) {
          const y = walk(x);
          if (y !== x) changed = true;
          out[k] = y;
        }
        return changed ? out : v;
      }
      return v;
    };
    const out = walk(value) as T;
    return { value: out, hits };
  }
}
