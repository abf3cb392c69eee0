#!/usr/bin/env python3
"""Export a real Salamandra / ALIA checkpoint from the Hugging Face hub as an alia-edge bundle.

Needs Python >= 3.10, the hub and PyPI (neither is reachable on alia-edge's CI machines, so this script is
documented and kept here but never run by the test suite):

    python -m venv .venv && . .venv/bin/activate
    pip install "optimum[onnxruntime]>=1.23" "onnxruntime>=1.20" "transformers>=4.45" huggingface_hub
    huggingface-cli login            # ALIA-40b and Salamandra are gated: accept the licence on the hub first

    # Edge draft: Salamandra-2b (instruct), fp32 export then 4-bit weights for the edge (~1.3 GB)
    python infra/export_bundle.py --model BSC-LT/salamandra-2b-instruct --out bundles/salamandra-2b-instruct --q4 \
        --id salamandra-2b-instruct --version 1 --role draft
    # Target for the ONNX verifier (GPU host, onnxruntime-node with CUDA): ALIA-40b in fp16 (~81 GB, external data)
    python infra/export_bundle.py --model BSC-LT/ALIA-40b --out bundles/alia-40b --fp16 --id alia-40b --version 1 --role target

Then, from the repo root (Node):
    npm run bundle:manifest -- bundles/salamandra-2b-instruct --id salamandra-2b-instruct --version 1 --role draft
    npm run bundle:upload -- bundles/salamandra-2b-instruct --bucket alia-edge-models --endpoint https://<account>.r2.cloudflarestorage.com

The export keeps Optimum's decoder-with-past I/O (input_ids, attention_mask, position_ids,
past_key_values.N.key/value → logits, present.N.key/value), exactly what alia-edge's fixtures imitate, so
the same runners load it. Production ALIA-40b is normally served by SGLang instead (SglangEngine); an ONNX
target bundle is still useful for single-GPU verifiers and for cross-checks.
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

HF_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]
SPECIAL_IDS = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3, "<|im_start|>": 4, "<|im_end|>": 5}


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="hub id, e.g. BSC-LT/salamandra-2b-instruct")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--id", required=True, help="bundle id written to manifest.json")
    p.add_argument("--version", default="1")
    p.add_argument("--role", choices=["draft", "target", "any"], default="any")
    p.add_argument("--q4", action="store_true", help="also write onnx/model_q4.onnx (4-bit MatMulNBits, block 32)")
    p.add_argument("--fp16", action="store_true", help="export weights in fp16 (GPU verifiers)")
    a = p.parse_args()

    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    onnx_dir = out / "onnx"
    # Optimum's exporter writes model.onnx (+ model.onnx_data when > 2 GB) with KV-cache inputs.
    cmd = ["optimum-cli", "export", "onnx", "--model", a.model, "--task", "text-generation-with-past",
           "--opset", "17", str(onnx_dir)]
    if a.fp16:
        cmd += ["--dtype", "fp16", "--device", "cuda"]
    run(cmd)
    for f in HF_FILES:
        src = onnx_dir / f
        if src.exists():
            shutil.move(str(src), out / f)
    for stray in onnx_dir.glob("*.json"):
        stray.unlink()  # special_tokens_map.json etc. are not part of the bundle format

    if a.q4:
        from onnxruntime.quantization.matmul_4bits_quantizer import MatMul4BitsQuantizer
        import onnx

        model = onnx.load(str(onnx_dir / "model.onnx"), load_external_data=True)
        q = MatMul4BitsQuantizer(model, block_size=32, is_symmetric=True)
        q.process()
        q.model.save_model_to_file(str(onnx_dir / "model_q4.onnx"), use_external_data_format=True)

    # The same checks the Node side makes, early: Salamandra's special ids and a chat template.
    tok = json.loads((out / "tokenizer.json").read_text())
    ids = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    for name, want in SPECIAL_IDS.items():
        got = ids.get(name, tok["model"]["vocab"].get(name))
        if got != want:
            print(f"warning: {name} has id {got}, alia-edge expects {want}", file=sys.stderr)
    tcfg = json.loads((out / "tokenizer_config.json").read_text())
    if not tcfg.get("chat_template"):
        print("warning: tokenizer_config.json has no chat_template (base model?)", file=sys.stderr)
    print(f"bundle written to {out}; now run: npm run bundle:manifest -- {out} --id {a.id} --version {a.version} --role {a.role}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
