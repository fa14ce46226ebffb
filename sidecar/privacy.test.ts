import { describe, expect, it } from "vitest";
import { SecretMasker } from "./privacy.js";

describe("SecretMasker", () => {
  const m = new SecretMasker(true, ["internal-[0-9]{6}"]);

  it.each([
    ["an OpenAI key", "key sk-proj-abcdefghijklmnopqrstuvwxyz0123 end", "key [MASKED:openai-key] end"],
    ["an Anthropic key", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx", "[MASKED:openai-key]"],
    ["a GitHub token", "token ghp_abcdefghijklmnopqrstuvwxyz0123456789 ok", "token [MASKED:github-token] ok"],
    ["an AWS access key id", "AKIAIOSFODNN7EXAMPLE", "[MASKED:aws-access-key]"],
    ["an AWS secret", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "[MASKED:aws-secret]"],
    ["a JWT", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "[MASKED:jwt]"],
    ["a bearer token", "Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer [MASKED:bearer]"],
    ["a password assignment", 'password="correct-horse-battery-staple"', 'password="[MASKED:secret-assignment]"'],
    ["a private key", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "[MASKED:private-key]"],
    ["a configured pattern", "ticket internal-123456 filed", "ticket [MASKED:custom-1] filed"],
  ])("masks %s", (_name, input, expected) => {
    expect(m.maskString(input)).toEqual({ value: expected, hits: 1 });
  });

  it("leaves ordinary text alone", () => {
    const s = "The function skips short-lived tokens; see https://example.com/docs?page=2 for a task list.";
    expect(m.maskString(s)).toEqual({ value: s, hits: 0 });
  });

  it("masks deep inside JSON values and reports hits; disabled masks nothing", () => {
    const v = { messages: [{ role: "user", content: [{ type: "text", text: "use sk-abcdefghijklmnopqrstuvwxyz please" }] }], n: 1 };
    const r = m.maskDeep(v);
    expect(r.hits).toBe(1);
    expect(r.value.messages[0]!.content[0]!.text).toBe("use [MASKED:openai-key] please");
    expect(v.messages[0]!.content[0]!.text).toContain("sk-abcdef");
    expect(new SecretMasker(false).maskDeep(v)).toEqual({ value: v, hits: 0 });
  });

  it("rejects a configured pattern that is not a regex", () => {
    expect(() => new SecretMasker(true, ["("])).toThrow(/secretPatterns\[0\]/);
  });
});
