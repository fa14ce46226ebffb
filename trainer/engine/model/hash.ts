// A content hash that identifies a model's weights without reading gigabytes: sha256 over each
// weight file's size, its header (GGUF metadata + tensor infos, or the safetensors JSON) and 64
// evenly spaced 4 KiB samples of its data. Two different checkpoints of the same architecture
// differ in their headers' sizes only rarely, but in their sampled bytes almost surely; a changed
// file keeps its hash only if the change misses every sample (an edit of < 1/64 of the data).
import crypto from "node:crypto";
import fs from "node:fs";

const SAMPLES = 64;
const SAMPLE_BYTES = 4096;

export function hashWeightFiles(files: { file: string; headerBytes: number }[]): string {
  const h = crypto.createHash("sha256");
  for (const { file, headerBytes } of files) {
    const fd = fs.openSync(file, "r");
    try {
      const size = fs.fstatSync(fd).size;
      h.update(`${size}\n`);
      const header = Buffer.alloc(Math.min(headerBytes, size));
      fs.readSync(fd, header, 0, header.length, 0);
      h.update(header);
      const dataSize = size - header.length;
      const buf = Buffer.alloc(SAMPLE_BYTES);
      for (let i = 0; i < SAMPLES && dataSize > 0; i++) {
        const pos = header.length + Math.floor(((dataSize - Math.min(SAMPLE_BYTES, dataSize)) * i) / (SAMPLES - 1));
        const n = fs.readSync(fd, buf, 0, Math.min(SAMPLE_BYTES, dataSize), pos);
        h.update(buf.subarray(0, n));
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  return `sha256:${h.digest("hex")}`;
}
