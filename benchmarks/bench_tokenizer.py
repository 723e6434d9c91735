"""Tokenizer speed and parity: bertkit vs HuggingFace `tokenizers` (Rust) on >= 10 MB of real English + Korean text.

    .venv/bin/python benchmarks/bench_tokenizer.py [--mb 12] [--data ../shared/data] [--no-parity]
    .venv/bin/python benchmarks/bench_tokenizer.py --mode squad [--repeats 3] [--scaling-mb 4]

Both sides encode the same lines with the uncased bert-base vocabulary of all-MiniLM-L6-v2 (special tokens
added, no truncation): HuggingFace once on one thread (TOKENIZERS_PARALLELISM=false) and once in batch mode on
all cores; bertkit on one thread from a fresh tokenizer (cold caches; a second, warm pass is reported too).
The ids must agree for every line; then offsets and word ids are compared for every line as well (>= 100,000
lines). Prints one JSON line; MB means UTF-8 megabytes (10**6 bytes) of input text.

`--mode squad` races the transformers call (`BertTokenizerFast`, Rust, at its default parallelism: batch calls
use every core) on the SQuAD contexts of ../shared/data/qa-squad-v1.1: (a) with offsets
(`return_offsets_mapping=True`), (b) QA windows as HF's run_qa.py makes them (question + context,
truncation="only_second", max_length=384, stride=128, overflowing tokens and offsets), (c) plain ids. Ours and
HF's run interleaved in one process, best of --repeats; ours "cold" is a fresh tokenizer's first pass, "warm" a
second pass. Ids, offsets, token types and overflow_to_sample_mapping must be identical on every input. Then
bertkit's process scaling: MB/s of the mixed corpus (--scaling-mb) at num_workers 1 and 2, ids and offsets.
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


def machine() -> dict:
    """CPU model, the flags that matter for speed, and the cores this process may use."""
    info = {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "rayon_threads": os.environ.get("RAYON_NUM_THREADS", "default (all cores)"),
            "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM", "unset (on)"),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags"))
        info["flags"] = [f for f in flags if f.startswith(("avx", "amx", "sse4", "fma", "bmi"))]
    except (OSError, StopIteration):
        pass
    return info


def squad_texts(data: Path) -> tuple[list[str], list[str], list[str]]:
    """(contexts, questions, the context of each question) of the SQuAD file, in file order."""
    with lzma.open(data / "qa-squad-v1.1" / "squad-v1.1-dev-train-split.json.xz", "rt", encoding="utf-8") as f:
        articles = json.load(f)["data"]
    contexts, questions, question_contexts = [], [], []
    for article in articles:
        for paragraph in article["paragraphs"]:
            contexts.append(paragraph["context"])
            for qa in paragraph["qas"]:
                questions.append(qa["question"].lstrip())  # as run_qa.py strips them
                question_contexts.append(paragraph["context"])
    return contexts, questions, question_contexts


def _rows(encoding, key: str) -> list:
    if key == "overflow_to_sample_mapping":  # one int per row
        return list(encoding[key])
    return [list(map(tuple, row)) if key == "offset_mapping" else list(row) for row in encoding[key]]


def squad_main(args: argparse.Namespace) -> None:
    from bertkit import BertTokenizer
    sys.path.insert(0, str(REPO / "tests"))
    setting = os.environ.get("TOKENIZERS_PARALLELISM")
    import transformers
    from conftest import minilm_folder  # (it turns Rust's threads off for the tests: put the setting back)
    if setting is None:
        os.environ.pop("TOKENIZERS_PARALLELISM", None)
    else:
        os.environ["TOKENIZERS_PARALLELISM"] = setting

    model_dir = minilm_folder()
    hf = transformers.BertTokenizerFast.from_pretrained(str(model_dir))
    contexts, questions, question_contexts = squad_texts(args.data)
    qa_options = dict(truncation="only_second", max_length=384, stride=128, return_overflowing_tokens=True,
                      return_offsets_mapping=True)
    cases = {
        "offsets_squad_contexts": (lambda tok: tok(contexts, return_offsets_mapping=True),
                                   ("input_ids", "offset_mapping", "token_type_ids", "attention_mask"),
                                   sum(len(c.encode("utf-8")) for c in contexts)),
        "qa_windows": (lambda tok: tok(questions, question_contexts, **qa_options),
                       ("input_ids", "offset_mapping", "token_type_ids", "attention_mask",
                        "overflow_to_sample_mapping"),
                       sum(len(q.encode("utf-8")) + len(c.encode("utf-8")) for q, c in zip(questions, question_contexts))),
        "plain_ids_squad_contexts": (lambda tok: tok(contexts), ("input_ids", "token_type_ids", "attention_mask"),
                                     sum(len(c.encode("utf-8")) for c in contexts)),
    }
    result: dict = {"bench": "tokenizer-squad", "machine": machine(), "texts": len(contexts),
                    "questions": len(questions)}
    for name, (call, keys, size) in cases.items():
        cold = warm = theirs = float("inf")
        identical = True
        for _ in range(args.repeats):  # interleaved: ours cold, ours warm, HF's, so load on the box hits all three
            ours = BertTokenizer.from_pretrained(model_dir)
            mine, wall, _ = timed(lambda: call(ours))
            cold = min(cold, wall)
            _, wall, _ = timed(lambda: call(ours))
            warm = min(warm, wall)
            reference, wall, _ = timed(lambda: call(hf))
            theirs = min(theirs, wall)
            identical = identical and all(_rows(mine, key) == _rows(reference, key) for key in keys)
        result[name] = {"identical": identical, "rows": len(mine["input_ids"]), "mb": round(size / 1e6, 3),
                        "bertkit_cold_s": round(cold, 4), "bertkit_warm_s": round(warm, 4), "hf_s": round(theirs, 4),
                        "ratio_cold": round(theirs / cold, 2), "ratio_warm": round(theirs / warm, 2)}
    if args.scaling_mb:
        lines = load_corpus(args.data, args.scaling_mb)
        megabytes = sum(len(line.encode("utf-8")) for line in lines) / 1e6
        scaling: dict = {"corpus_mb": round(megabytes, 2), "lines": len(lines)}
        for label, options in (("ids", {}), ("offsets", {"return_offsets_mapping": True})):
            ours = BertTokenizer.from_pretrained(model_dir)
            ours(lines, **options)  # warm caches, so the figures compare processes, not cache fills
            outputs = {}
            for workers in (1, 2):
                ours.num_workers = workers
                best = float("inf")
                for _ in range(args.repeats):
                    outputs[workers], wall, _ = timed(lambda: ours(lines, **options))
                    best = min(best, wall)
                scaling[f"{label}_{workers}_workers_mb_s"] = round(megabytes / best, 2)
            scaling[f"{label}_speedup_2_workers"] = round(scaling[f"{label}_2_workers_mb_s"]
                                                          / scaling[f"{label}_1_workers_mb_s"], 2)
            scaling[f"{label}_identical"] = dict(outputs[1]) == dict(outputs[2])
        result["processes"] = scaling
    print(json.dumps(result, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=12.0, help="corpus size in MB of UTF-8 text (>= 10)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per figure")
    parser.add_argument("--no-parity", action="store_true", help="skip the offsets / word ids comparison")
    parser.add_argument("--mode", choices=("corpus", "squad"), default="corpus",
                        help="corpus: ids on the mixed corpus vs Rust on one thread; squad: offsets, QA windows "
                             "and ids vs BertTokenizerFast at its default parallelism")
    parser.add_argument("--scaling-mb", type=float, default=4.0,
                        help="--mode squad: MB of the mixed corpus for the 1 vs 2 worker figures (0: skip)")
    args = parser.parse_args()
    if args.mode == "squad":
        return squad_main(args)

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
