"""`bertkit attention "TEXT" --model DIR`: the attention view of one sentence as a self-contained HTML page.

    bertkit attention "He got bit by Python" --model DIR --output view.html
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bertkit.errors import MissingFileError, UserError
from bertkit.serve.attention_view import attention_html


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help='the sentence, e.g. "He got bit by Python"')
    parser.add_argument("--pair", default=None, help="an optional second sentence (sentence B)")
    parser.add_argument("--model", required=True, help="model folder (HuggingFace layout: config.json, weights, vocab.txt)")
    parser.add_argument("--output", "--out", dest="out", default="attention.html", help="where to write the page (default attention.html)")


def run(args: argparse.Namespace) -> int:
    folder = Path(args.model)
    if not (folder / "config.json").is_file():
        raise MissingFileError(f"{args.model!r} is not a model folder (no config.json); pass --model <folder>")
    if not args.text.strip():
        raise UserError("the text is empty; give a sentence, e.g. bertkit attention \"He got bit by Python\" --model DIR")
    from bertkit import model as models
    from bertkit.tokenizer import BertTokenizer

    # Attention does not depend on the head, but loading the checkpoint's own class keeps the load quiet
    # (no "weights not used" warning for the head) and works for any checkpoint.
    architectures = models.BertConfig.from_pretrained(folder).architectures or []
    model_class = next((getattr(models, a) for a in architectures if hasattr(models, a)), models.BertModel)
    model = model_class.from_pretrained(folder).eval()
    tokenizer = BertTokenizer.from_pretrained(folder)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(attention_html(model, tokenizer, args.text, args.pair), encoding="utf-8")
    print(out)
    return 0
