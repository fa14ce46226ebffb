// adapters: LoRA artifacts (in memory, PEFT safetensors, GGUF) and the file formats under them.
export * from "./lora.js";
export * from "./formats/index.js";
export * from "./drivers/index.js";
