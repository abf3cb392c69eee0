// wrangler imports `*.wasm` as a compiled WebAssembly.Module (Workers cannot compile wasm from bytes).
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
