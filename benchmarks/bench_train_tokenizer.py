"""WordPiece vocabulary training: bertkit vs HuggingFace `tokenizers` WordPieceTrainer, same text, one process.

    python benchmarks/bench_train_tokenizer.py                      # English Wikipedia, 10 MB, 30,000 tokens
    python benchmarks/bench_train_tokenizer.py --lang ko            # Korean Wikipedia (8 MB), Korean mode
    python benchmarks/bench_train_tokenizer.py --mb 2 --vocab-size 8000
    python benchmarks/bench_train_tokenizer.py --hf-one-thread --seed-loop   # HF on one core; + the seed's loop

Both train on the same text (the first documents of the Wikipedia extract in ../shared/data, body text only)
and are scored on the same held-out documents (the next 1 MB). Prints ONE JSON line: training seconds for
both (bertkit: word counting + learning; single-threaded; HF: Rust, all cores), the ratio, and tokens per
held-out word (plus the [UNK] rate) for both vocabularies, both encoded by bertkit's BertTokenizer.

The two are different algorithms: bertkit merges by the WordPiece likelihood score of seed 003,
freq(ab) / (freq(a) * freq(b)); HuggingFace's WordPieceTrainer is a BPE trainer underneath (it merges the
most frequent pair) that writes a WordPiece vocabulary.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bertkit import BertTokenizer  # noqa: E402
from bertkit.tokenizer.normalize import BertPreTokenizer  # noqa: E402
from bertkit.tokenizer.vocab_trainer import SPECIAL_TOKENS, count_words, learn_vocab  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "data"
ARCHIVES = {
    "en": SHARED_DATA / "text-en-wikipedia" / "enwiki-wikitasks-text-AA.tar.xz",
    "ko": SHARED_DATA / "text-ko-wikipedia" / "kowiki-text-AA-wiki_00-09.tar.xz",
}


def wiki_documents(archive: Path):
    """Body text (paragraph lines) of each WikiExtractor document; title-only documents are skipped."""
    with tarfile.open(archive) as tar:
        for member in sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name):
            lines: list[str] = []
            for line in io.TextIOWrapper(tar.extractfile(member), encoding="utf-8"):
                if line.startswith("<doc "):
                    lines = []
                elif line.startswith("</doc>"):
                    body = [text for text in lines[1:] if text.strip()]  # lines[0] is the title
                    if body:
                        yield "\n".join(body) + "\n"
                else:
                    lines.append(line.rstrip("\n"))


def split_corpus(archive: Path, train_bytes: int, held_bytes: int) -> tuple[str, str]:
    train, held, size = [], [], 0
    for document in wiki_documents(archive):
        (train if size < train_bytes else held).append(document)
        size += len(document.encode("utf-8"))
        if size >= train_bytes + held_bytes:
            break
    if not held:
        raise SystemExit(f"{archive} holds less than {(train_bytes + held_bytes) / 1e6:.1f} MB; lower --mb")
    return "".join(train), "".join(held)


def train_huggingface(path: str, vocab_size: int, min_frequency: int, korean: bool) -> list[str]:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    hf = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    if korean:  # keep Hangul whole: strip accents by NFD -> drop marks -> NFC, as bertkit's Korean mode does
        hf.normalizer = normalizers.Sequence([normalizers.BertNormalizer(lowercase=True, strip_accents=False),
                                              normalizers.NFD(), normalizers.StripAccents(), normalizers.NFC()])
    else:
        hf.normalizer = normalizers.BertNormalizer(lowercase=True)
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    hf.train([path], trainer)
    return [token for token, _ in sorted(hf.get_vocab().items(), key=lambda item: item[1])]


def tokens_per_word(vocab: list[str], held_out: str, korean: bool) -> tuple[float, float, int]:
    """(tokens per word, [UNK] per word, words) over the held-out lines, encoded by bertkit's tokenizer."""
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, keep_hangul=korean)
    n_words = n_tokens = n_unk = 0
    for line in held_out.splitlines():
        n_words += len(tokenizer.pre_tokenizer.pre_tokenize(line))
        ids = tokenizer.encode(line, add_special_tokens=False)
        n_tokens += len(ids)
        n_unk += ids.count(tokenizer.unk_token_id)
    return n_tokens / n_words, n_unk / n_words, n_words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang", choices=sorted(ARCHIVES), default="en")
    parser.add_argument("--mb", type=float, default=None, help="training text in MB (default: 10 en, 8 ko)")
    parser.add_argument("--held-out-mb", type=float, default=1.0)
    parser.add_argument("--vocab-size", type=int, default=30000)
    parser.add_argument("--min-frequency", type=int, default=2, help="pair-count floor, both trainers (default 2)")
    parser.add_argument("--hf-one-thread", action="store_true", help="limit HuggingFace to one thread, as bertkit")
    parser.add_argument("--seed-loop", action="store_true",
                        help="also train with coarse_to_fine=False (seed 003's loop as printed) and score it")
    args = parser.parse_args()
    if args.hf_one_thread:  # read by the Rust thread pool when `tokenizers` first trains
        os.environ["RAYON_NUM_THREADS"] = "1"
    korean = args.lang == "ko"
    mb = args.mb if args.mb is not None else (8.0 if korean else 10.0)
    train_text, held_out = split_corpus(ARCHIVES[args.lang], int(mb * 1e6), int(args.held_out_mb * 1e6))

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.txt")
        Path(path).write_text(train_text, encoding="utf-8")

        start = time.perf_counter()
        with open(path, encoding="utf-8") as handle:
            words = count_words(handle, BertPreTokenizer(lowercase=True, keep_hangul=korean))
        counted = time.perf_counter()
        ours = learn_vocab(words, args.vocab_size, args.min_frequency)
        ours_s = time.perf_counter() - start
        count_s = counted - start

        start = time.perf_counter()
        theirs = train_huggingface(path, args.vocab_size, args.min_frequency, korean)
        hf_s = time.perf_counter() - start

    extra = {}
    if args.seed_loop:
        start = time.perf_counter()
        seed_loop = learn_vocab(words, args.vocab_size, args.min_frequency, coarse_to_fine=False)
        extra["seed_loop_learn_s"] = round(time.perf_counter() - start, 2)
        extra["seed_loop_vocab"] = len(seed_loop)
        extra["seed_loop_tokens_per_word"] = round(tokens_per_word(seed_loop, held_out, korean)[0], 4)

    ours_tpw, ours_unk, n_words = tokens_per_word(ours, held_out, korean)
    hf_tpw, hf_unk, _ = tokens_per_word(theirs, held_out, korean)
    print(json.dumps({
        "bench": "train_tokenizer", "lang": args.lang, "train_mb": round(len(train_text.encode()) / 1e6, 2),
        "held_out_mb": round(len(held_out.encode()) / 1e6, 2), "vocab_size_asked": args.vocab_size,
        "ours_s": round(ours_s, 2), "ours_count_words_s": round(count_s, 2), "hf_s": round(hf_s, 2),
        "ratio_ours_over_hf": round(ours_s / hf_s, 2),
        "ours_vocab": len(ours), "hf_vocab": len(theirs),
        "min_frequency": args.min_frequency,
        "ours_tokens_per_word": round(ours_tpw, 4), "hf_tokens_per_word": round(hf_tpw, 4),
        "ours_unk_rate": round(ours_unk, 5), "hf_unk_rate": round(hf_unk, 5),
        "held_out_words": n_words,
        "hf_algorithm": "BPE (most frequent pair) writing a WordPiece vocab", "hf_threads": 1 if args.hf_one_thread else os.cpu_count(),
        "ours_threads": 1, **extra,
    }))


if __name__ == "__main__":
    main()
