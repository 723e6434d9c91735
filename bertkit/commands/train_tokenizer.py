"""`bertkit train-tokenizer FILES... --output DIR`: train a WordPiece vocabulary (`bertkit.tokenizer.vocab_trainer`).

    bertkit train-tokenizer corpus.txt --output my-tokenizer --vocab-size 8000
    bertkit train-tokenizer ko.txt --output ko-tokenizer --korean     # Hangul syllables kept whole
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bertkit.errors import UserError
from bertkit.tokenizer.vocab_trainer import SPECIAL_TOKENS, train_wordpiece


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="training text files (.txt, .xz, .gz, .bz2) or folders of them")
    parser.add_argument("-o", "--output", required=True, help="folder to write the tokenizer to (vocab.txt, tokenizer_config.json, ...)")
    parser.add_argument("--vocab-size", type=int, default=30000, help="vocabulary size, special tokens included (default 30000)")
    parser.add_argument("--min-frequency", type=int, default=2, help="never merge pairs seen fewer times (default 2)")
    parser.add_argument("--limit-alphabet", type=int, default=None, help="keep only the N most frequent characters")
    parser.add_argument("--cased", action="store_true", help="keep case (and accents, unless --strip-accents)")
    parser.add_argument("--strip-accents", action=argparse.BooleanOptionalAction, default=None,
                        help="strip accents (default: only when lowercasing)")
    parser.add_argument("--keep-hangul", "--korean", action="store_true",
                        help="Korean mode: keep Hangul syllables whole when stripping accents")
    parser.add_argument("--no-chinese-split", action="store_true", help="do not split CJK ideographs one by one")
    parser.add_argument("--special-token", action="append", default=[], metavar="TOKEN",
                        help="an extra special token, placed after BERT's five (repeat for more)")
    parser.add_argument("--coarse-to-fine", action=argparse.BooleanOptionalAction, default=True,
                        help="merge frequent pairs first (default); --no-coarse-to-fine runs seed 003's loop as printed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise UserError(f"--output {output} is a file; give a folder to write the tokenizer into")
    files = [Path(f) for f in args.files]
    tokenizer = train_wordpiece(
        files,
        vocab_size=args.vocab_size,
        min_frequency=args.min_frequency,
        limit_alphabet=args.limit_alphabet,
        lowercase=not args.cased,
        strip_accents=args.strip_accents,
        keep_hangul=args.keep_hangul,
        tokenize_chinese_chars=not args.no_chinese_split,
        special_tokens=[*SPECIAL_TOKENS, *args.special_token],
        coarse_to_fine=args.coarse_to_fine,
        show_progress=not args.quiet,
    )
    tokenizer.save_pretrained(output)
    print(f"wrote a {tokenizer.vocab_size}-token WordPiece vocabulary to {output}/vocab.txt "
          f"(load it with BertTokenizer.from_pretrained({str(output)!r}))")
    return 0
