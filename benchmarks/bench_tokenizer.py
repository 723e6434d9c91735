"""Tokenizer speed and parity: bertkit vs HuggingFace `tokenizers` (Rust) on >= 10 MB of real English + Korean text.

    .venv/bin/python benchmarks/bench_tokenizer.py [--mb 12] [--data ../shared/data] [--no-parity]

Both sides encode the same lines with the uncased bert-base vocabulary of all-MiniLM-L6-v2 (special tokens
added, no truncation): HuggingFace once on one thread (TOKENIZERS_PARALLELISM=false) and once in batch mode on
all cores; bertkit on one thread from a fresh tokenizer (cold caches; a second, warm pass is reported too).
The ids must agree for every line; then offsets and word ids are compared for every line as well (>= 100,000
lines). Prints one JSON line; MB means UTF-8 megabytes (10**6 bytes) of input text.
"""
from __future__ import annotations

import argparse
import itertools
import json
import lzma
import os
import platform
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MIN_LINES = 100_000


def wiki_lines(archive: Path, max_bytes: int) -> list[str]:
    """Body lines (> 40 chars) of a WikiExtractor tar.xz, up to max_bytes of UTF-8."""
    lines, size = [], 0
    with tarfile.open(archive, mode="r|xz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            for line in tar.extractfile(member).read().decode("utf-8").splitlines():
                if len(line) > 40 and not line.startswith(("<doc", "</doc")):
                    lines.append(line)
                    size += len(line.encode("utf-8"))
                    if size >= max_bytes:
                        return lines
    return lines


def review_lines(path: Path, max_bytes: int, min_lines: int = 0) -> list[str]:
    lines, size = [], 0
    with lzma.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.strip():
                lines.append(line)
                size += len(line.encode("utf-8"))
                if size >= max_bytes and len(lines) >= min_lines:
                    break
    return lines


def load_corpus(data: Path, megabytes: float) -> list[str]:
    """~45% English Wikipedia, ~40% Korean movie reviews, ~15% Korean Wikipedia (mixed scripts); >= 100k lines."""
    total = int(megabytes * 1e6)
    english = wiki_lines(data / "text-en-wikipedia" / "enwiki-wikitasks-text-AA.tar.xz", int(total * 0.45))
    kowiki = wiki_lines(data / "text-ko-wikipedia" / "kowiki-text-AA-wiki_00-09.tar.xz", int(total * 0.15))
    reviews = review_lines(data / "ko-text" / "ko_reviews.txt.xz", int(total * 0.40),
                           min_lines=MIN_LINES - len(english) - len(kowiki))
    # interleave, so that neither side sees one language for seconds on end
    mixed = [line for group in itertools.zip_longest(english, reviews, kowiki) for line in group if line]
    return mixed


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=12.0, help="corpus size in MB of UTF-8 text (>= 10)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per figure")
    parser.add_argument("--no-parity", action="store_true", help="skip the offsets / word ids comparison")
    args = parser.parse_args()

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import tokenizers

    from bertkit import BertTokenizer
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import minilm_folder

    model_dir = minilm_folder()
    lines = load_corpus(args.data, args.mb)
    megabytes = sum(len(line.encode("utf-8")) for line in lines) / 1e6

    import transformers
    hf_call = transformers.BertTokenizerFast.from_pretrained(str(model_dir))
    hf = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    hf.no_truncation()
    hf.no_padding()
    # Best of `repeats` for every figure (the machine is shared); bertkit starts from a fresh tokenizer each
    # time, so its figure includes filling its caches ("cold"); the warm figure is a second pass.
    hf_wall = hf_cpu = hf_batch_wall = ours_wall = ours_cpu = warm_wall = hf_call_cpu = float("inf")
    for _ in range(args.repeats):
        hf_encodings, wall, cpu = timed(lambda: hf.encode_batch(lines))  # one thread
        hf_wall, hf_cpu = min(hf_wall, wall), min(hf_cpu, cpu)
        os.environ["TOKENIZERS_PARALLELISM"] = "true"
        _, wall, _ = timed(lambda: hf.encode_batch(lines))  # all cores
        hf_batch_wall = min(hf_batch_wall, wall)
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        ours = BertTokenizer.from_pretrained(model_dir)
        ours_ids, wall, cpu = timed(lambda: ours(lines)["input_ids"])
        ours_wall, ours_cpu = min(ours_wall, wall), min(ours_cpu, cpu)
        _, wall, _ = timed(lambda: ours(lines)["input_ids"])
        warm_wall = min(warm_wall, wall)
        # what transformers users call: BertTokenizerFast(lines), which also turns the ids into Python lists
        _, _, cpu = timed(lambda: hf_call(lines)["input_ids"])
        hf_call_cpu = min(hf_call_cpu, cpu)

    mismatches = [i for i, (mine, theirs) in enumerate(zip(ours_ids, hf_encodings)) if mine != theirs.ids]
    result = {
        "bench": "tokenizer", "machine": f"{platform.machine()} {os.cpu_count()} cpus (shared)",
        "corpus_mb": round(megabytes, 2), "lines": len(lines),
        "bertkit_mb_s": round(megabytes / ours_wall, 2),
        "bertkit_warm_mb_s": round(megabytes / warm_wall, 2),
        "hf_rust_1thread_mb_s": round(megabytes / hf_wall, 2),
        "hf_rust_batch_mb_s": round(megabytes / hf_batch_wall, 2),
        "ratio_vs_rust_1thread": round(hf_wall / ours_wall, 2),
        "ratio_vs_rust_batch": round(hf_batch_wall / ours_wall, 2),
        # CPU seconds: steadier than wall time when other jobs share the cores (both sides run one thread)
        "bertkit_cpu_mb_s": round(megabytes / ours_cpu, 2), "hf_rust_1thread_cpu_mb_s": round(megabytes / hf_cpu, 2),
        "ratio_vs_rust_1thread_cpu": round(hf_cpu / ours_cpu, 2),
        "hf_transformers_call_1thread_cpu_mb_s": round(megabytes / hf_call_cpu, 2),
        "ids_identical": not mismatches and len(ours_ids) == len(hf_encodings),
    }
    if mismatches:
        result["first_mismatch"] = lines[mismatches[0]][:200]
    if not args.no_parity:
        detailed = ours(lines, return_offsets_mapping=True)
        bad = [i for i, theirs in enumerate(hf_encodings)
               if detailed["offset_mapping"][i] != theirs.offsets or detailed.word_ids(i) != theirs.word_ids
               or detailed["token_type_ids"][i] != theirs.type_ids
               or detailed["attention_mask"][i] != theirs.attention_mask]
        result["parity_lines"] = len(lines)
        result["offsets_word_ids_identical"] = not bad
        if bad:
            result["first_parity_mismatch"] = lines[bad[0]][:200]
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
