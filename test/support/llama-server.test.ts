// The part of the llama-server build helper that decides without building: which tools are
// missing (the error must name them). Its build lock is test/support/dir-lock.ts.
import { describe, expect, it } from "vitest";
import { findToolchain } from "./llama-server.js";

describe("findToolchain", () => {
  const only = (...present: string[]) => (cmd: string) => present.includes(cmd);

  it("names the one tool that is missing", () => {
    expect(() => findToolchain({}, only("git", "c++", "cc", "ninja"))).toThrow(/but cmake is not installed/);
  });

  it("names every missing tool, compilers included", () => {
    let message = "";
    try {
      findToolchain({}, only());
    } catch (err) {
      message = (err as Error).message;
    }
    for (const tool of ["git", "cmake", "a C++ compiler (c++, g++ or clang++)", "a C compiler (cc, gcc or clang)", "ninja or make"]) expect(message).toContain(tool);
    expect(message).toContain("CLAWLOOP_LLAMA_SERVER");
  });

  it("names a compiler set in CXX that does not run, rather than falling back to another", () => {
    expect(() => findToolchain({ CXX: "clang++-99" }, only("git", "cmake", "g++", "cc", "ninja"))).toThrow(/the C\+\+ compiler CXX=clang\+\+-99 is not installed/);
  });

  it("picks ninja when it is there, else make", () => {
    expect(findToolchain({}, only("git", "cmake", "g++", "gcc", "ninja", "make"))).toEqual({ generator: "Ninja", cc: "gcc", cxx: "g++" });
    expect(findToolchain({}, only("git", "cmake", "clang++", "clang", "make"))).toEqual({ generator: "Unix Makefiles", cc: "clang", cxx: "clang++" });
  });
});
