"""What a pretrained checkpoint learned, on CPU: fill-mask on held-out text and a short SST-2 fine-tune, each beside
the same architecture with random weights (what pretraining bought). Made for the small BERT that
`gpu_suite.py` brings back from the GPU (issue 13), works on any BertForMaskedLM / BertForPreTraining folder.

    python benchmarks/what_it_learned.py --model out/small_bert        # the checkpoint the GPU run returned

1. fill-mask: sentences of WikiText-2 valid (another corpus than the Wikipedia extract the small BERT trained on),
   one word masked in each (a whole word that is one token of the vocabulary, 4+ letters, not a stop word);
   top-1 and top-5 accuracy over --mask-sentences sentences, and the top 5 for the first --show of them.
2. SST-2: `finetune_classifier` on --train-examples SST-2 training sentences for --epochs, dev accuracy (the whole
   dev set unless --eval-examples), from the checkpoint and from random weights, same seed and settings.
Prints ONE JSON line.
"""
from __future__ import annotations

import argparse
import json
import lzma
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bertkit import BertTokenizer, pipeline  # noqa: E402
from bertkit.model import BertConfig, BertForMaskedLM  # noqa: E402
from bertkit.train.recipes import finetune_classifier, recipe_arguments  # noqa: E402

DATA = REPO.parent / "shared" / "data"
STOP_WORDS = {"that", "this", "with", "from", "were", "have", "been", "which", "their", "they", "there", "also",
              "when", "would", "into", "other", "after", "while", "than", "then", "them", "these", "some", "more"}


def masked_sentences(tokenizer: BertTokenizer, count: int) -> list[tuple[str, str]]:
    """(sentence with one [MASK], the word masked) from WikiText-2 valid: the first suitable word of each
    sentence, so the choice is reproducible and not picked by the model."""
    vocab = tokenizer.get_vocab()
    found = []
    with lzma.open(DATA / "text-en-wikitext2" / "valid.txt.xz", "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("="):
                continue
            for sentence in line.split(" . "):
                words = sentence.split()
                if not 8 <= len(words) <= 40 or "@" in sentence or "<unk>" in sentence:
                    continue
                for i, word in enumerate(words[1:], start=1):
                    lower = word.lower()
                    if lower.isalpha() and len(lower) >= 4 and lower not in STOP_WORDS and lower in vocab:
                        found.append((" ".join(words[:i] + [tokenizer.mask_token] + words[i + 1:]) + " .", lower))
                        break
                if len(found) == count:
                    return found
    return found


def fill_mask_scores(folder: Path, examples: list[tuple[str, str]], show: int) -> dict:
    unmasker = pipeline("fill-mask", model=str(folder))
    predictions = unmasker([text for text, _ in examples], top_k=5, batch_size=32)
    top1 = sum(p[0]["token_str"] == word for p, (_, word) in zip(predictions, examples))
    top5 = sum(word in [x["token_str"] for x in p] for p, (_, word) in zip(predictions, examples))
    return {"top1_acc": round(top1 / len(examples), 4), "top5_acc": round(top5 / len(examples), 4),
            "examples": [{"text": text, "answer": word, "top5": [x["token_str"] for x in p]}
                         for p, (text, word) in list(zip(predictions, examples))[:show]]}


def random_twin(folder: Path, target: Path) -> Path:
    """The checkpoint's architecture with fresh random weights (seed 0), saved with its tokenizer."""
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig.from_pretrained(folder)).save_pretrained(target)
    BertTokenizer.from_pretrained(folder).save_pretrained(target)
    return target


def sst2(folder: Path, output: Path, args: argparse.Namespace) -> dict:
    config = recipe_arguments(output_dir=str(output), num_train_epochs=args.epochs, per_device_train_batch_size=32,
                              learning_rate=args.lr, warmup_ratio=0.1, seed=0, device="cpu", logging_steps=10**9)
    result = finetune_classifier(folder, DATA / "en-sentiment-sst2" / "train.tsv.xz", DATA / "en-sentiment-sst2" / "dev.tsv",
                                 config, max_length=64, max_train_examples=args.train_examples,
                                 max_eval_examples=args.eval_examples)
    return {"dev_accuracy": round(result["eval"]["accuracy"], 4), "train_examples": result["train_examples"],
            "eval_examples": result["eval_examples"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a pretrained BertForMaskedLM/BertForPreTraining folder")
    parser.add_argument("--mask-sentences", type=int, default=500)
    parser.add_argument("--show", type=int, default=5)
    parser.add_argument("--train-examples", type=int, default=4000)
    parser.add_argument("--eval-examples", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=3.0)
    # small BERTs fine-tune at 1e-4..5e-4; at 1e-4 for 2 epochs a small random-weight twin learned only the majority class
    parser.add_argument("--lr", type=float, default=3e-4)
    args = parser.parse_args(argv)
    tokenizer = BertTokenizer.from_pretrained(args.model)
    examples = masked_sentences(tokenizer, args.mask_sentences)
    if not examples:
        raise SystemExit("no WikiText-2 sentence has a maskable word in this vocabulary")
    with tempfile.TemporaryDirectory() as tmp:
        random_folder = random_twin(args.model, Path(tmp) / "random")
        result = {
            "benchmark": "what_it_learned", "model": str(args.model), "masked_sentences": len(examples),
            "fill_mask": {"pretrained": fill_mask_scores(args.model, examples, args.show),
                          "random": fill_mask_scores(random_folder, examples, 0)},
            "sst2": {"pretrained": sst2(args.model, Path(tmp) / "sst2-pretrained", args),
                     "random": sst2(random_folder, Path(tmp) / "sst2-random", args)},
        }
    print(json.dumps(result, ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()
