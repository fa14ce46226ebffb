// The engine's view of a base model: loadModel(path) for a .gguf file or a Hugging Face folder.
export type * from "./types.js";
export { identifyModel, loadModel } from "./load.js";
export { parseHfConfig, ggufModelConfig, llama3RopeDivisors } from "./config.js";
export { HfChatTokenizer, tokenizerFromFolder, tokenizerFromGguf } from "./tokenizer.js";
