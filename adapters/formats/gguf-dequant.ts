// Dequantization of ggml block formats to fp32. Each function decodes whole blocks from `src`
// into `out` starting at `o`, with no per-element allocation. The arithmetic follows ggml's
// reference order in float32 (Math.fround on the per-block scales and products), so the
// results are bit-identical to gguf-py's numpy dequantizer, which the tests check.
import { halfToFloat } from "./float16.js";
import { GGML_BLOCK, GgmlType, ggmlTypeName } from "./gguf-types.js";

const fr = Math.fround;

function f16(src: Uint8Array, i: number): number {
  return halfToFloat(src[i]! | (src[i + 1]! << 8));
}

type Decoder = (src: Uint8Array, nBlocks: number, out: Float32Array, o: number) => void;

const decodeF32: Decoder = (src, n, out, o) => {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  for (let i = 0; i < n; i++) out[o + i] = view.getFloat32(i * 4, true);
};

const decodeF16: Decoder = (src, n, out, o) => {
  for (let i = 0; i < n; i++) out[o + i] = f16(src, i * 2);
};

const decodeBF16: Decoder = (src, n, out, o) => {
  const u = new Uint32Array(out.buffer, out.byteOffset + o * 4, n);
  for (let i = 0; i < n; i++) u[i] = (src[i * 2]! | (src[i * 2 + 1]! << 8)) << 16;
};

const decodeF64: Decoder = (src, n, out, o) => {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  for (let i = 0; i < n; i++) out[o + i] = view.getFloat64(i * 8, true);
};

const decodeQ4_0: Decoder = (src, n, out, o) => {
  for (let b = 0, p = 0; b < n; b++, p += 18, o += 32) {
    const d = f16(src, p);
    for (let j = 0; j < 16; j++) {
      const q = src[p + 2 + j]!;
      out[o + j] = d * ((q & 0x0f) - 8);
      out[o + j + 16] = d * ((q >> 4) - 8);
    }
  }
};

const decodeQ4_1: Decoder = (src, n, out, o) => {
  for (let b = 0, p = 0; b < n; b++, p += 20, o += 32) {
    const d = f16(src, p);
    const m = f16(src, p + 2);
    for (let j = 0; j < 16; j++) {
      const q = src[p + 4 + j]!;
      out[o + j] = fr(d * (q & 0x0f)) + m;
      out[o + j + 16] = fr(d * (q >> 4)) + m;
    }
  }
};

const decodeQ5_0: Decoder = (src, n, out, o) => {
  for (let b = 0, p = 0; b < n; b++, p += 22, o += 32) {
    const d = f16(src, p);
    const qh = (src[p + 2]! | (src[p + 3]! << 8) | (src[p + 4]! << 16) | (src[p + 5]! << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const q = src[p + 6 + j]!;
      const h0 = ((qh >>> j) << 4) & 0x10;
      const h1 = (qh >>> (j + 12)) & 0x10;
      out[o + j] = d * (((q & 0x0f) | h0) - 16);
      out[o + j + 16] = d * (((q >> 4) | h1) - 16);
    }
  }
};

const decodeQ5_1: Decoder = (src, n, out, o) => {
  for (let b = 0, p = 0; b < n; b++, p += 24, o += 32) {
    const d = f16(src, p);
    const m = f16(src, p + 2);
    const qh = (src[p + 4]! | (src[p + 5]! << 8) | (src[p + 6]! << 16) | (src[p + 7]! << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const q = src[p + 8 + j]!;
      const h0 = ((qh >>> j) << 4) & 0x10;
      const h1 = (qh >>> (j + 12)) & 0x10;
      out[o + j] = fr(d * ((q & 0x0f) | h0)) + m;
      out[o + j + 16] = fr(d * ((q >> 4) | h1)) + m;
    }
  }
};

const decodeQ8_0: Decoder = (src, n, out, o) => {
  for (let b = 0, p = 0; b < n; b++, p += 34, o += 32) {
    const d = f16(src, p);
    for (let j = 0; j < 32; j++) out[o + j] = d * ((src[p + 2 + j]! << 24) >> 24);
  }
};

// Q2_K: scales[16] (low nibble scale, high nibble min), qs[64] (2-bit), d, dmin.
const decodeQ2_K: Decoder = (src, n, out, o) => {
  for (let b = 0, p = 0; b < n; b++, p += 84, o += 256) {
    const d = f16(src, p + 80);
    const dmin = f16(src, p + 82);
    for (let e = 0; e < 256; e += 16) {
      const s = src[p + (e >> 4)]!;
      const dl = fr(d * (s & 0x0f));
      const ml = fr(dmin * (s >> 4));
      const half = e >> 7;
      const shift = ((e & 127) >> 5) * 2;
      for (let k = 0; k < 16; k++) {
        const l = (e + k) & 31;
        out[o + e + k] = fr(dl * ((src[p + 16 + half * 32 + l]! >> shift) & 3)) - ml;
      }
    }
  }
};

// Q3_K: hmask[32], qs[64] (low 2 bits), scales[12] (6-bit, packed), d.
const scales3 = new Int32Array(16);
const decodeQ3_K: Decoder = (src, n, out, o) => {
  for (let b = 0, p = 0; b < n; b++, p += 110, o += 256) {
    const d = f16(src, p + 108);
    const sp = p + 96;
    for (let i = 0; i < 16; i++) {
      const lo = i < 8 ? src[sp + i]! & 0x0f : src[sp + i - 8]! >> 4;
      const hi = (src[sp + 8 + (i & 3)]! >> (2 * (i >> 2))) & 3;
      scales3[i] = (lo | (hi << 4)) - 32;
    }
    for (let e = 0; e < 256; e += 16) {
      const dl = fr(d * scales3[e >> 4]!);
      const half = e >> 7;
      const shift = ((e & 127) >> 5) * 2;
      const bit = e >> 5;
      for (let k = 0; k < 16; k++) {
        const l = (e + k) & 31;
        const q = ((src[p + 32 + half * 32 + l]! >> shift) & 3) - (((src[p + l]! >> bit) & 1) ? 0 : 4);
        out[o + e + k] = dl * q;
      }
    }
  }
};

// The 6-bit scale/min pairs shared by Q4_K and Q5_K (ggml's get_scale_min_k4).
const sc8 = new Float64Array(8);
const mn8 = new Float64Array(8);
function scaleMinK4(src: Uint8Array, s: number): void {
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      sc8[j] = src[s + j]! & 63;
      mn8[j] = src[s + j + 4]! & 63;
    } else {
      sc8[j] = (src[s + j + 4]! & 0x0f) | ((src[s + j - 4]! >> 6) << 4);
      mn8[j] = (src[s + j + 4]! >> 4) | ((src[s + j]! >> 6) << 4);
    }
  }
}

const decodeQ4_K: Decoder = (src, n, out, o) => {
  for (let b = 0, p = 0; b < n; b++, p += 144, o += 256) {
    const d = f16(src, p);
    const dmin = f16(src, p + 2);
    scaleMinK4(src, p + 4);
    const qs = p + 16;
    for (let j = 0; j < 4; j++) {
      const d1 = fr(d * sc8[2 * j]!), m1 = fr(dmin * mn8[2 * j]!);
      const d2 = fr(d * sc8[2 * j + 1]!), m2 = fr(dmin * mn8[2 * j + 1]!);
      const base = o + j * 64;
      for (let l = 0; l < 32; l++) {
        const q = src[qs + j * 32 + l]!;
        out[base + l] = fr(d1 * (q & 0x0f)) - m1;
        out[base + 32 + l] = fr(d2 * (q >> 4)) - m2;
      }
    }
  }
};

const decodeQ5_K: Decoder = (src, n, out, o) => {
  for (let b = 0, p = 0; b < n; b++, p += 176, o += 256) {
    const d = f16(src, p);
    const dmin = f16(src, p + 2);
    scaleMinK4(src, p + 4);
    const qh = p + 16;
    const qs = p + 48;
    for (let j = 0; j < 4; j++) {
      const d1 = fr(d * sc8[2 * j]!), m1 = fr(dmin * mn8[2 * j]!);
      const d2 = fr(d * sc8[2 * j + 1]!), m2 = fr(dmin * mn8[2 * j + 1]!);
      const u1 = 1 << (2 * j), u2 = 2 << (2 * j);
      const base = o + j * 64;
      for (let l = 0; l < 32; l++) {
        const q = src[qs + j * 32 + l]!;
        const h = src[qh + l]!;
        out[base + l] = fr(d1 * ((q & 0x0f) + (h & u1 ? 16 : 0))) - m1;
        out[base + 32 + l] = fr(d2 * ((q >> 4) + (h & u2 ? 16 : 0))) - m2;
      }
    }
  }
};

// Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d.
const decodeQ6_K: Decoder = (src, n, out, o) => {
  for (let b = 0, p = 0; b < n; b++, p += 210, o += 256) {
    const d = f16(src, p + 208);
    for (let half = 0; half < 2; half++) {
      const ql = p + half * 64;
      const qh = p + 128 + half * 32;
      const sc = p + 192 + half * 8;
      const y = o + half * 128;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = src[qh + l]!;
        const a = src[ql + l]!, c = src[ql + l + 32]!;
        const q1 = ((a & 0x0f) | ((h & 3) << 4)) - 32;
        const q2 = ((c & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((a >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((c >> 4) | (((h >> 6) & 3) << 4)) - 32;
        out[y + l] = fr(d * ((src[sc + is]! << 24) >> 24)) * q1;
        out[y + l + 32] = fr(d * ((src[sc + is + 2]! << 24) >> 24)) * q2;
        out[y + l + 64] = fr(d * ((src[sc + is + 4]! << 24) >> 24)) * q3;
        out[y + l + 96] = fr(d * ((src[sc + is + 6]! << 24) >> 24)) * q4;
      }
    }
  }
};

const DECODERS: Record<number, Decoder> = {
  [GgmlType.F32]: decodeF32,
  [GgmlType.F16]: decodeF16,
  [GgmlType.BF16]: decodeBF16,
  [GgmlType.F64]: decodeF64,
  [GgmlType.Q4_0]: decodeQ4_0,
  [GgmlType.Q4_1]: decodeQ4_1,
  [GgmlType.Q5_0]: decodeQ5_0,
  [GgmlType.Q5_1]: decodeQ5_1,
  [GgmlType.Q8_0]: decodeQ8_0,
  [GgmlType.Q2_K]: decodeQ2_K,
  [GgmlType.Q3_K]: decodeQ3_K,
  [GgmlType.Q4_K]: decodeQ4_K,
  [GgmlType.Q5_K]: decodeQ5_K,
  [GgmlType.Q6_K]: decodeQ6_K,
};

export function canDequantize(type: number): boolean {
  return type in DECODERS;
}

/**
 * Decodes `src` (whole blocks of `type`) into `out` starting at element `outOffset`.
 * Returns the number of elements written.
 */
export function dequantizeInto(type: number, src: Uint8Array, out: Float32Array, outOffset = 0): number {
  const decode = DECODERS[type];
  const block = GGML_BLOCK[type];
  if (!decode || !block) throw new Error(`cannot dequantize ggml type ${ggmlTypeName(type)}: not supported`);
  if (src.byteLength % block.bytes !== 0) throw new Error(`${ggmlTypeName(type)} data of ${src.byteLength} bytes is not a whole number of blocks`);
  const nBlocks = src.byteLength / block.bytes;
  const elems = nBlocks * block.elems;
  if (outOffset + elems > out.length) throw new Error(`output too small for ${elems} ${ggmlTypeName(type)} values`);
  // Per-element decoders (floats) take an element count; block decoders a block count.
  decode(src, block.elems === 1 ? elems : nBlocks, out, outOffset);
  return elems;
}

export function dequantize(type: number, src: Uint8Array): Float32Array {
  const block = GGML_BLOCK[type];
  if (!block) throw new Error(`cannot dequantize ggml type ${ggmlTypeName(type)}: not supported`);
  const out = new Float32Array((src.byteLength / block.bytes) * block.elems);
  dequantizeInto(type, src, out, 0);
  return out;
}
