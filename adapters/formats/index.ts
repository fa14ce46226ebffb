// Adapter and model file formats: safetensors, GGUF (read, dequantize, write), PEFT and GGUF LoRA.
export * from "./float16.js";
export * from "./safetensors.js";
