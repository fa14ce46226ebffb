// Adapter and model file formats: safetensors, GGUF (read, dequantize, write), PEFT and GGUF LoRA.
export * from "./float16.js";
export * from "./safetensors.js";
export * from "./gguf.js";
export * from "./gguf-names.js";
export { canDequantize, dequantize, dequantizeInto } from "./gguf-dequant.js";
export * from "./peft.js";
export * from "./gguf-lora.js";
