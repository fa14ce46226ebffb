// How many threads the embedded engine computes with when the user did not say.
//
// llama.cpp's threads spin while they wait for each other, so a multi-threaded decode collapses
// when other work takes one of its cores: on a loaded 2-core machine, bench:serve measured SmolLM2
// at 5.8 tok/s with 2 threads against 31.5 tok/s with 1, in one run (serve/README.md, "Threads"). With the trainer alongside on such a machine, the engine takes one core and leaves
// the other to the trainer.

/** Machines with at most this many cores run the engine single-threaded beside the trainer. */
export const SMALL_MACHINE_CORES = 2;

/**
 * The engine's thread count: `configured` when the user set one (> 0); 1 on a machine of
 * ≤ SMALL_MACHINE_CORES cores when the trainer runs alongside; otherwise 0, the engine's own
 * default (the cores useful for math).
 */
export function defaultEngineThreads(cores: number, trainingAlongside: boolean, configured: number): number {
  if (configured > 0) return configured;
  if (trainingAlongside && cores <= SMALL_MACHINE_CORES) return 1;
  return 0;
}
