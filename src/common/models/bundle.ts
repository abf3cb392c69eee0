// Model bundle format: Hugging Face layout plus our manifest.json. Everything that reads a bundle
// (model store, runners, tokenizer pairing) validates through these schemas.
import { z } from "zod";
import { describeZodIssues } from "../zod-issues.ts";

export const MANIFEST_FILE = "manifest.json";
/** Files every bundle must carry besides the manifest (an ONNX variant may add more under onnx/). */
export const REQUIRED_BUNDLE_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"] as const;

const relativePath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith("/") && !p.split("/").includes("..") && !p.includes("\\"), {
    message: "file paths must be relative, with no '..' and '/' as separator",
  });

export const ManifestFileSchema = z.object({
  path: relativePath,
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "sha256 must be 64 lowercase hex digits"),
});

export const ManifestSchema = z
  .object({
    format: z.literal("alia-edge-bundle/1"),
    // id and version become cache folder names and bucket key segments: no separators, no "."/"..".
    id: z.string().regex(/^(?!\.\.?$)[A-Za-z0-9._-]+$/, "bundle id: letters, digits, '.', '_' and '-' (not '.' or '..')"),
    version: z.string().regex(/^(?!\.\.?$)[A-Za-z0-9._+-]+$/, "version: letters, digits, '.', '_', '+' and '-' (not '.' or '..')"),
    role: z.enum(["draft", "target", "any"]).default("any"),
    created: z.string().optional(),
    files: z.array(ManifestFileSchema).min(1),
  })
  .superRefine((m, ctx) => {
    const paths = new Set(m.files.map((f) => f.path));
    if (paths.size !== m.files.length) ctx.addIssue({ code: "custom", message: "duplicate file path in manifest" });
    for (const req of REQUIRED_BUNDLE_FILES) {
      if (!paths.has(req)) ctx.addIssue({ code: "custom", message: `manifest lacks required file ${req}` });
    }
  });
export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestFile = z.infer<typeof ManifestFileSchema>;

/** The subset of a transformers `LlamaConfig` that the runners need. */
export const ModelConfigSchema = z
  .object({
    model_type: z.literal("llama"),
    architectures: z.array(z.string()).optional(),
    vocab_size: z.number().int().positive(),
    hidden_size: z.number().int().positive(),
    intermediate_size: z.number().int().positive(),
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    num_key_value_heads: z.number().int().positive(),
    head_dim: z.number().int().positive().optional(),
    max_position_embeddings: z.number().int().positive(),
    rms_norm_eps: z.number().positive(),
    rope_theta: z.number().positive().default(10000),
    bos_token_id: z.number().int().nonnegative(),
    eos_token_id: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]),
    pad_token_id: z.number().int().nonnegative().optional(),
    tie_word_embeddings: z.boolean().default(false),
  })
  .passthrough()
  .superRefine((c, ctx) => {
    if (c.num_attention_heads % c.num_key_value_heads !== 0) ctx.addIssue({ code: "custom", message: "num_attention_heads must be a multiple of num_key_value_heads" });
    if (c.head_dim === undefined && c.hidden_size % c.num_attention_heads !== 0) ctx.addIssue({ code: "custom", message: "hidden_size must be a multiple of num_attention_heads" });
  });
export type ModelConfig = z.infer<typeof ModelConfigSchema>;

export function headDim(c: ModelConfig): number {
  return c.head_dim ?? c.hidden_size / c.num_attention_heads;
}
export function eosIds(c: ModelConfig): number[] {
  return Array.isArray(c.eos_token_id) ? c.eos_token_id : [c.eos_token_id];
}

export const GenerationConfigSchema = z
  .object({
    bos_token_id: z.number().int().optional(),
    eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).optional(),
    pad_token_id: z.number().int().optional(),
    do_sample: z.boolean().optional(),
    temperature: z.number().optional(),
    top_p: z.number().optional(),
    top_k: z.number().int().optional(),
    max_new_tokens: z.number().int().optional(),
  })
  .passthrough();
export type GenerationConfig = z.infer<typeof GenerationConfigSchema>;

export const TokenizerConfigSchema = z
  .object({
    chat_template: z.string().min(1),
    bos_token: z.string().optional(),
    eos_token: z.string().optional(),
    pad_token: z.string().optional(),
    unk_token: z.string().optional(),
    add_bos_token: z.boolean().optional(),
    add_eos_token: z.boolean().optional(),
  })
  .passthrough();
export type TokenizerConfig = z.infer<typeof TokenizerConfigSchema>;

/** A bundle whose files have been fetched and verified; `read` returns the bytes of one file. */
export interface LoadedBundle {
  manifest: Manifest;
  config: ModelConfig;
  generationConfig: GenerationConfig;
  tokenizerJson: unknown;
  tokenizerConfig: TokenizerConfig;
  /** Bytes of the ONNX graph to run (default `onnx/model.onnx`). */
  onnx: Uint8Array;
  /**
   * Weights the graph keeps outside the protobuf (Optimum writes `model.onnx_data` above 2 GB, the q4
   * quantiser `model_q4.onnx_data`): `path` as the graph names it, relative to the graph's folder.
   */
  externalData?: { path: string; data: Uint8Array }[];
  /** Local folder holding the bundle, when it lives on disk (Node only). */
  dir?: string;
  /** Path of the graph inside the bundle (default `onnx/model.onnx`). */
  onnxFile?: string;
}

/** The ChatML template of Salamandra/ALIA instruct models (simplified: no tool calls). */
export const CHATML_TEMPLATE =
  "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

export function parseJsonFile<T>(schema: z.ZodType<T>, bytes: Uint8Array, file: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new Error(`${file}: ${describeZodIssues(r.error)}`);
  return r.data;
}

/** Files holding a graph's external weights: named after the graph (model.onnx_data, model.onnx.data). */
export function externalDataFiles(manifest: Manifest, onnxFile: string): { file: string; path: string }[] {
  const folder = onnxFile.includes("/") ? onnxFile.slice(0, onnxFile.lastIndexOf("/") + 1) : "";
  return manifest.files.filter((f) => f.path.startsWith(onnxFile) && /^(_data|\.data)$/.test(f.path.slice(onnxFile.length))).map((f) => ({ file: f.path, path: f.path.slice(folder.length) }));
}

export function bundleLabel(m: Pick<Manifest, "id" | "version">): string {
  return `${m.id}@${m.version}`;
}
