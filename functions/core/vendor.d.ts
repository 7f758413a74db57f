// hash-wasm's per-algorithm builds ship without type declarations; they export the same functions.
declare module 'hash-wasm/dist/sha256.umd.min.js' {
  const sha256: { createSHA256: typeof import('hash-wasm').createSHA256 };
  export default sha256;
}
