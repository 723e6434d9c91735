"""`bertkit prepare-corpus --workers N`: MB/s of raw text at 1 and 2 workers, and what limits the scaling.

    .venv/bin/python benchmarks/bench_prepare_corpus.py [--mb 15] [--repeats 2] [--workers 1 2]

The input is real: the first members of the English Wikipedia WikiExtractor archive (shared/data), repacked as a
~--mb MB (uncompressed) .tar.xz, the layout prepare-corpus reads in docs/pretraining.md. Every run is a fresh
process (a cold tokenizer cache, as on the command line) writing a fresh folder; runs are interleaved
(1, 2, 1, 2, ...) and the best of --repeats is kept, since the machine may be shared. Before timing, the outputs
of every worker count must agree (same documents, tokens and held-out documents). A last run times the parent's
share alone (reading, decompressing, parsing: `iter_raw_documents`), the serial part that bounds the scaling:
projected speedup(N cores, N workers) = T1 / max(T_read, T1 / N): the work spreads over the cores until the
one reader can no longer feed them (the cap T1 / T_read).
Prints one JSON line: MB/s per worker count, the ratio, cpu count and the load average before and after.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "text-en-wikipedia" / "enwiki-wikitasks-text-AA.tar.xz"


def make_sample(archive: Path, megabytes: float, folder: Path) -> tuple[Path, int]:
    """The archive's first members (sorted) until `megabytes` of text, as a .tar.xz; (path, uncompressed bytes)."""
    target = folder / f"enwiki-{megabytes:g}MB.tar.xz"
    size_file = target.with_suffix(".size")
    if target.is_file() and size_file.is_file():
        return target, int(size_file.read_text())
    total = 0
    with tarfile.open(archive, "r:*") as source, tarfile.open(target, "w:xz", preset=1) as sink:
        for member in sorted((m for m in source.getmembers() if m.isfile()), key=lambda m: m.name):
            data = source.extractfile(member).read()
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            sink.addfile(info, io.BytesIO(data))
            total += len(data)
            if total >= megabytes * 1e6:
                break
    size_file.write_text(str(total))
    return target, total


def one_run(sample: str, out: str, workers: int, tokenizer: str) -> dict:
    """One timed prepare_corpus call (in this fresh process); workers 0: time the reading alone."""
    from bertkit.data.corpus import iter_raw_documents, prepare_corpus
    from bertkit.tokenizer import BertTokenizer

    def cpu(who: int) -> float:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    tok = BertTokenizer.from_pretrained(tokenizer)
    start, own, children = time.perf_counter(), cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    if workers == 0:
        documents = sum(1 for _ in iter_raw_documents([sample]))
        return {"seconds": time.perf_counter() - start, "cpu": cpu(resource.RUSAGE_SELF) - own, "documents": documents}
    header = prepare_corpus([sample], out, tok, workers=workers, progress=False)
    seconds = time.perf_counter() - start
    parent = cpu(resource.RUSAGE_SELF) - own
    return {"seconds": seconds, "parent_cpu": parent, "cpu": parent + cpu(resource.RUSAGE_CHILDREN) - children,
            "documents": header["documents"], "tokens": header["tokens"],
            "valid_documents": sum(s["documents"] for s in header["splits"]["valid"]),
            "shards": sum(len(v) for v in header["splits"].values())}


def spawn(sample: Path, out: Path, workers: int, tokenizer: str) -> dict:
    command = [sys.executable, __file__, "--one", str(workers), "--sample", str(sample), "--out", str(out),
               "--tokenizer", tokenizer]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=15.0, help="MB of uncompressed text in the sample (default 15)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per worker count, best kept (default 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--archive", default=str(ARCHIVE))
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: all-MiniLM-L6-v2's)")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sample", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_run(args.sample, args.out, args.one, args.tokenizer)))
        return
    if args.tokenizer is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import minilm_folder

        args.tokenizer = str(minilm_folder())
    work = Path(tempfile.gettempdir()) / "bertkit-bench-prepare-corpus"
    work.mkdir(exist_ok=True)
    sample, size = make_sample(Path(args.archive), args.mb, work)
    load_before = os.getloadavg()
    runs: dict[int, list[dict]] = {n: [] for n in args.workers}
    for _ in range(args.repeats):
        for n in args.workers:  # interleaved, so a neighbour's load hits every count alike
            runs[n].append(spawn(sample, work / f"out-{n}", n, args.tokenizer))
    reading = min((spawn(sample, work / "read", 0, args.tokenizer) for _ in range(args.repeats)),
                  key=lambda r: r["seconds"])
    load_after = os.getloadavg()
    keys = ("documents", "tokens", "valid_documents")
    agree = all({k: r[k] for k in keys} == {k: runs[args.workers[0]][0][k] for k in keys}
                for rs in runs.values() for r in rs)
    mb = size / 1e6
    best = {n: min(r["seconds"] for r in rs) for n, rs in runs.items()}
    result: dict = {"input": sample.name, "input_mb": round(mb, 2), "documents": runs[args.workers[0]][0]["documents"],
                    "tokens": runs[args.workers[0]][0]["tokens"], "outputs_agree": agree}
    for n in args.workers:
        result[f"workers_{n}_mb_s"] = round(mb / best[n], 2)
        result[f"workers_{n}_seconds"] = [round(r["seconds"], 2) for r in runs[n]]
    if 1 in best and 2 in best:
        result["ratio_2_vs_1"] = round(best[1] / best[2], 2)
    result["serial_read_mb_s"] = round(mb / reading["seconds"], 2)
    for n in args.workers:  # CPU seconds, all processes: what the run costs whatever the neighbours take
        result[f"workers_{n}_cpu_s"] = round(min(r["cpu"] for r in runs[n]), 2)
        result[f"workers_{n}_parent_cpu_s"] = round(min(r["parent_cpu"] for r in runs[n]), 2)
    result["serial_read_cpu_s"] = round(reading["cpu"], 2)
    if len(args.workers) > 1:
        # on free cores: the total CPU of the many-worker run spread over N cores, unless the parent (reading,
        # decompressing, parsing, dealing out text) cannot keep up
        many = max(args.workers)
        total, parent = result[f"workers_{many}_cpu_s"], result[f"workers_{many}_parent_cpu_s"]
        one = result[f"workers_{args.workers[0]}_cpu_s"]
        result["cpu_overhead_vs_1_worker"] = round(total / one, 3)
        result["projected_speedup_free_cores"] = {str(n): round(one / max(parent, total / n), 2) for n in (2, 4, 8, 16)}
        result["speedup_cap"] = round(one / parent, 1)
    result.update({"cpu_count": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
                   "loadavg_before": [round(x, 2) for x in load_before],
                   "loadavg_after": [round(x, 2) for x in load_after], "python": sys.version.split()[0]})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
