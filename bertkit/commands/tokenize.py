"""`bertkit tokenize --vocab DIR "text" [--pair "text"]`: print each token with its id (and segment)."""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the text to tokenize")
    parser.add_argument("--tokenizer", "--vocab", dest="vocab", required=True, metavar="DIR",
                        help="tokenizer folder (vocab.txt [+ tokenizer_config.json] or tokenizer.json) or a vocab.txt")
    parser.add_argument("--pair", metavar="TEXT", help="a second text: encoded as [CLS] text [SEP] pair [SEP]")
    parser.add_argument("--max-length", type=int, help="truncate to this many tokens (longest_first)")
    parser.add_argument("--keep-hangul", action="store_true", default=None,
                        help="Korean mode: strip Latin accents but keep Hangul syllables whole")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    from bertkit.tokenizer.tokenizer import BertTokenizer

    overrides = {} if args.keep_hangul is None else {"keep_hangul": True}
    tokenizer = BertTokenizer.from_pretrained(args.vocab, **overrides)
    encoding = tokenizer(args.text, args.pair, truncation=args.max_length is not None, max_length=args.max_length,
                         return_offsets_mapping=True)
    tokens = encoding.tokens()
    if args.json:
        print(json.dumps({"tokens": tokens, "input_ids": encoding["input_ids"],
                          "token_type_ids": encoding["token_type_ids"],
                          "offsets": [list(o) for o in encoding["offset_mapping"]]}, ensure_ascii=False))
        return 0
    texts = [args.text, args.pair]
    print(f"{'token':<20} {'id':>7} {'type':>4}  text")
    for token, token_id, type_id, (start, end), seq in zip(
            tokens, encoding["input_ids"], encoding["token_type_ids"], encoding["offset_mapping"],
            encoding.sequence_ids()):
        span = "" if seq is None else texts[seq][start:end]
        print(f"{token:<20} {token_id:>7} {type_id:>4}  {span}")
    print(f"{len(tokens)} tokens; ids: {encoding['input_ids']}")
    return 0
