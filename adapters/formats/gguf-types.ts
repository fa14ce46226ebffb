// GGUF's numeric tags: metadata value types and ggml tensor types with their block layouts.

export const GgufValueType = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7,
  STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

export const GgmlType = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q8_1: 9,
  Q2_K: 10, Q3_K: 11, Q4_K: 12, Q5_K: 13, Q6_K: 14, Q8_K: 15,
  I8: 24, I16: 25, I32: 26, I64: 27, F64: 28, BF16: 30,
} as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

const NAMES = new Map<number, string>(Object.entries(GgmlType).map(([k, v]) => [v, k]));
export function ggmlTypeName(type: number): string {
  return NAMES.get(type) ?? `type#${type}`;
}

/** Elements per block and bytes per block (ggml's `type_traits`), for the types we know. */
export const GGML_BLOCK: Record<number, { elems: number; bytes: number }> = {
  [GgmlType.F32]: { elems: 1, bytes: 4 },
  [GgmlType.F16]: { elems: 1, bytes: 2 },
  [GgmlType.BF16]: { elems: 1, bytes: 2 },
  [GgmlType.F64]: { elems: 1, bytes: 8 },
  [GgmlType.I8]: { elems: 1, bytes: 1 },
  [GgmlType.I16]: { elems: 1, bytes: 2 },
  [GgmlType.I32]: { elems: 1, bytes: 4 },
  [GgmlType.I64]: { elems: 1, bytes: 8 },
  [GgmlType.Q4_0]: { elems: 32, bytes: 18 },
  [GgmlType.Q4_1]: { elems: 32, bytes: 20 },
  [GgmlType.Q5_0]: { elems: 32, bytes: 22 },
  [GgmlType.Q5_1]: { elems: 32, bytes: 24 },
  [GgmlType.Q8_0]: { elems: 32, bytes: 34 },
  [GgmlType.Q8_1]: { elems: 32, bytes: 36 },
  [GgmlType.Q2_K]: { elems: 256, bytes: 84 },
  [GgmlType.Q3_K]: { elems: 256, bytes: 110 },
  [GgmlType.Q4_K]: { elems: 256, bytes: 144 },
  [GgmlType.Q5_K]: { elems: 256, bytes: 176 },
  [GgmlType.Q6_K]: { elems: 256, bytes: 210 },
  [GgmlType.Q8_K]: { elems: 256, bytes: 292 },
};

/** Bytes taken by `elements` values of `type`; throws for types we do not know. */
export function ggmlByteSize(type: number, elements: number): number {
  const b = GGML_BLOCK[type];
  if (!b) throw new Error(`unsupported ggml tensor type ${ggmlTypeName(type)}`);
  if (elements % b.elems !== 0) throw new Error(`${elements} elements is not a whole number of ${ggmlTypeName(type)} blocks (${b.elems})`);
  return (elements / b.elems) * b.bytes;
}
