"""Soak test: `bertkit serve` under rounds of concurrent load with bad and aborted requests; its memory must stay flat.

    python benchmarks/soak_test.py                                   # random BERT-tiny with a pretraining head
    python benchmarks/soak_test.py --clients 64 --rounds 3 --requests 600 --duration 30
    python benchmarks/soak_test.py --model path/to/folder            # any checkpoint: its endpoints are soaked
    python benchmarks/soak_test.py --mix --rounds 8 --requests 60    # issue 23's embedding soak: all-MiniLM-L6-v2,
                                                                     # 1-32 texts of 1-400 words, 30% Korean

Starts one server on loopback (a subprocess), then for each round drives every endpoint the model serves in
turn with --clients concurrent keep-alive clients: about --bad of the requests are bad or oversized (malformed
JSON, wrong types, a body over --max-body-bytes, a text over the token limit, too many masks) and about --abort of
them are aborted mid-request (the client sends half the body, or the whole request, and hangs up). Bounded: at
most --requests requests and --duration seconds per endpoint and round. After each round it prints, per endpoint,
requests/s, p50 and p99 latency and the answers counted by status code, then the server's RSS and whether
/health answers; at the end ONE JSON line (RSS, requests/s and texts/s per round, failures) and a check that the
RSS after rounds 3.. stays within 10% of round 2 (round 1 is the warm-up; with fewer rounds, of round 1): exit
status 1 if not. A 500, a reset or a wrong 200 count as failures.

--mix is the steady mixed load under which the server's memory once grew by 78% in 10 rounds (issue 23): /embed
only, each request 1-32 texts of 1-400 words (30% Korean, from ../shared/data), served with --truncate, so that
every batch has another shape. Without --model it serves all-MiniLM-L6-v2.

The clients are raw HTTP/1.1 on asyncio streams (as in load_test.py): a heavy client would take the CPU the
server is measured on.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import free_port, minilm_folder, real_sentences, serve_and_wait  # noqa: E402

MAX_BODY_BYTES = 65_536  # the server's cap in this test: the oversized bodies are just over it


def tiny_pretraining_model(folder: Path) -> Path:
    """A random BERT-tiny with both pretraining heads (fill-mask and next-sentence) and the MiniLM vocabulary."""
    import shutil

    import torch

    from bertkit.model import BertConfig, BertForPreTraining

    torch.manual_seed(0)
    vocab = minilm_folder() / "vocab.txt"
    config = BertConfig.from_size("tiny", vocab_size=len(vocab.read_text(encoding="utf-8").splitlines()))
    BertForPreTraining(config).save_pretrained(folder)
    shutil.copy(vocab, folder / "vocab.txt")
    return folder


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


def mixed_bodies(rng: random.Random, count: int, english: list[str], korean: list[str], korean_share: float = 0.3,
                 max_texts: int = 32, max_words: int = 400) -> list[tuple[bytes, int]]:
    """/embed bodies of 1..max_texts texts, each 1..max_words words cut from running text, `korean_share` Korean."""
    pools = [" ".join(english).split(), " ".join(korean).split()]

    def text() -> str:
        words = pools[rng.random() < korean_share]
        size = rng.randint(1, max_words)
        start = rng.randrange(len(words) - size)
        return " ".join(words[start:start + size])

    bodies = []
    for _ in range(count):
        texts = [text() for _ in range(rng.randint(1, max_texts))]
        bodies.append((json.dumps({"inputs": texts}, ensure_ascii=False).encode(), len(texts)))
    return bodies


def korean_sentences(limit: int) -> list[str]:
    """Korean movie reviews (NSMC dev), one per line."""
    from load_test import SHARED_DATA

    lines = (SHARED_DATA / "ko-sentiment" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[1].strip() for line in lines if line.count("\t") >= 2][:limit]


def good_bodies(task: str, sentences: list[str]) -> list[tuple[bytes, int]]:
    def body(index: int, text: str) -> dict:
        words = text.split()
        if task == "fill-mask":
            words[min(1, len(words) - 1)] = "[MASK]"
            return {"inputs": " ".join(words), "top_k": 5}
        if task == "next-sentence":
            return {"inputs": {"text": text, "text_pair": sentences[(index + 1) % len(sentences)]}}
        if task == "qa":
            return {"inputs": {"question": "What is it about?", "context": text}}
        return {"inputs": text}

    return [(json.dumps(body(i, s)).encode(), 1) for i, s in enumerate(sentences)]


def bad_bodies(task: str) -> list[tuple[bytes, set[int]]]:
    """Bad or oversized requests with the statuses they may get."""
    text = "[MASK] " * 50 if task == "fill-mask" else "word " * 600
    inputs = {"inputs": {"text": text, "text_pair": "b"}} if task == "next-sentence" else {"inputs": text}
    if task == "qa":
        inputs = {"inputs": {"question": "q", "context": "word " * 20_000}}
    return [
        (b'{"inputs": ', {400}),
        (b'{"inputs": 42}', {422}),
        (b'{"inputs": "' + b"x " * (MAX_BODY_BYTES // 2 + 100) + b'"}', {413}),
        (json.dumps(inputs).encode(), {413, 422} | ({200} if task == "tokenize" else set())),  # tokenize cuts, never refuses
        (b'{"inputs": "\xff\xfe"}', {400}),
    ]


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.codes: Counter = Counter()
        self.failures: list[str] = []
        self.texts = 0  # inputs answered with 200


async def exchange(port: int, path: str, body: bytes, connection: list, inputs: int = 1) -> tuple[int, bool]:
    """One request of `inputs` inputs on the client's kept-alive connection; returns the status and whether the
    server closes it."""
    if not connection:
        connection.extend(await asyncio.open_connection("127.0.0.1", port))
    reader, writer = connection
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    writer.write(head + body)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length, closes = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "connection" and value.strip().lower() == "close":
            closes = True
    answer = await reader.readexactly(length)
    if status == 200:
        results = json.loads(answer)["results"]
        assert len(results) == inputs and None not in results, f"a 200 without {inputs} results"
    return status, closes


async def abort(port: int, path: str, body: bytes, halfway: bool) -> None:
    """A client that hangs up: after half the body, or after the whole request without reading the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    writer.write(head + (body[: len(body) // 2] if halfway else body))
    await writer.drain()
    await asyncio.sleep(0.01)
    writer.transport.abort()


async def client(port: int, path: str, good: list[tuple[bytes, int]], bad: list[tuple[bytes, set[int]]], budget: list[int],
                 stop_at: float, rates: tuple[float, float], rng: random.Random, stats: Stats) -> None:
    connection: list = []
    while budget[0] > 0 and time.perf_counter() < stop_at:
        budget[0] -= 1
        roll = rng.random()
        if roll < rates[1]:
            await abort(port, path, rng.choice(good)[0], halfway=rng.random() < 0.5)
            stats.codes["aborted"] += 1
            continue
        if roll < rates[0] + rates[1]:
            (body, allowed), inputs = rng.choice(bad), 1
        else:
            (body, inputs), allowed = rng.choice(good), {200}
        began = time.perf_counter()
        try:
            status, closes = await exchange(port, path, body, connection, inputs)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError, AssertionError) as error:
            stats.codes["reset"] += 1
            stats.failures.append(f"{type(error).__name__}: {error}")
            if connection:
                connection[1].close()
            connection.clear()
            continue
        stats.latencies.append(time.perf_counter() - began)
        stats.codes[status] += 1
        stats.texts += inputs if status == 200 else 0
        if status not in allowed and not (status == 503 and 200 in allowed):  # overloaded is an honest answer
            stats.failures.append(f"{status} where {sorted(allowed)} was expected")
        if closes:
            connection[1].close()
            connection.clear()
    if connection:
        connection[1].close()


async def soak(port: int, task: str, sentences: list[str], args: argparse.Namespace, seed: int) -> tuple[Stats, float]:
    rng = random.Random(seed)
    stats, budget = Stats(), [args.requests]
    if args.mix:
        good = mixed_bodies(rng, 200, sentences, args.korean, args.korean_share, args.max_texts, args.max_words)
    else:
        good = good_bodies(task, sentences)
    bad = bad_bodies(task)
    began = time.perf_counter()
    await asyncio.gather(*(client(port, f"/{task}", good, bad, budget, began + args.duration, (args.bad, args.abort),
                                  random.Random(rng.random()), stats) for _ in range(args.clients)))
    return stats, time.perf_counter() - began


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else (values[0] if values else 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model folder (default: a random BERT-tiny with a pretraining head; "
                                        "with --mix all-MiniLM-L6-v2)")
    parser.add_argument("--mix", action="store_true", help="issue 23's steady mixed /embed load (see above)")
    parser.add_argument("--clients", type=int, default=None, help="concurrent clients (default 64; with --mix 8)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600, help="requests per endpoint and round (at most)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per endpoint and round (at most)")
    parser.add_argument("--bad", type=float, default=None, help="share of bad or oversized requests (default 0.05; "
                                                               "with --mix 0)")
    parser.add_argument("--abort", type=float, default=None, help="share of clients that hang up mid-request "
                                                                 "(default 0.03; with --mix 0)")
    parser.add_argument("--max-texts", type=int, default=32, help="--mix: at most this many texts per request")
    parser.add_argument("--max-words", type=int, default=400, help="--mix: at most this many words per text")
    parser.add_argument("--korean-share", type=float, default=0.3, help="--mix: share of Korean texts")
    parser.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    parser.add_argument("--tasks", nargs="*", help="endpoints to soak (default: every one the model serves)")
    parser.add_argument("--serve-flag", action="append", default=[],
                        help="one more `bertkit serve` argument, e.g. --serve-flag=--malloc-trim-seconds=0")
    args = parser.parse_args(argv)
    mix_defaults = {"clients": 8, "bad": 0.0, "abort": 0.0} if args.mix else {"clients": 64, "bad": 0.05, "abort": 0.03}
    for name, value in mix_defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    sentences = [s for s in real_sentences(400 if not args.mix else 10_000) if len(s.split()) >= 3]
    args.korean = korean_sentences(5000) if args.mix else []
    flags = ["--max-body-bytes", str(MAX_BODY_BYTES if not args.mix else 1 << 20), "--threads", str(args.threads)]
    # long requests on a slow machine: the soak measures memory, not the deadline
    flags += ["--truncate", "--max-texts", str(args.max_texts), "--request-timeout", "300"] if args.mix else []
    with tempfile.TemporaryDirectory() as scratch:
        if args.model:
            model = Path(args.model)
        else:
            model = minilm_folder() if args.mix else tiny_pretraining_model(Path(scratch) / "tiny")
        port = free_port()
        server = serve_and_wait(model, port, flags + args.serve_flag)
        try:
            tasks = args.tasks or (["embed"] if args.mix else get(port, "/info")["tasks"])
            mixed = (f"; mixed 1-{args.max_texts} texts of 1-{args.max_words} words, {args.korean_share:.0%} Korean"
                     if args.mix else "")
            print(f"soak: {model} on 127.0.0.1:{port}; endpoints {', '.join(tasks)}; {args.clients} clients, "
                  f"{args.rounds} rounds, <= {args.requests} requests / {args.duration:g} s per endpoint and round, "
                  f"{args.bad:.0%} bad, {args.abort:.0%} aborted{mixed}; "
                  f"flags {' '.join(args.serve_flag) or 'none'}; RSS at start {rss_mb(server.pid):.0f} MB", flush=True)
            rss, req_per_s, texts_per_s, failures = [], [], [], 0
            for round_ in range(1, args.rounds + 1):
                answered = texts = 0
                seconds = 0.0
                for task in tasks:
                    stats, took = asyncio.run(soak(port, task, sentences, args, seed=round_ * 1000 + len(task)))
                    answered, texts, seconds = answered + len(stats.latencies), texts + stats.texts, seconds + took
                    codes = ", ".join(f"{code}: {n}" for code, n in sorted(stats.codes.items(), key=str))
                    print(f"round {round_} /{task:<14} {len(stats.latencies) / took:7.1f} req/s  {stats.texts / took:7.1f} texts/s  "
                          f"p50 {percentile(stats.latencies, 50) * 1000:6.0f} ms  "
                          f"p99 {percentile(stats.latencies, 99) * 1000:6.0f} ms  [{codes}]", flush=True)
                    for failure in stats.failures[:3]:
                        print(f"    failure: {failure}")
                    failures += len(stats.failures)
                req_per_s.append(answered / seconds)
                texts_per_s.append(texts / seconds)
                time.sleep(1.0)  # let the last answers go out before measuring
                rss.append(rss_mb(server.pid))
                health = get(port, "/health")
                print(f"round {round_}: server RSS {rss[-1]:.0f} MB, /health {health}, in flight {get(port, '/info')['queue']}",
                      flush=True)
            base = 1 if len(rss) >= 2 else 0  # round 1 warms up: the reference is round 2
            drift = max((abs(value - rss[base]) / rss[base] for value in rss[base + 1:]), default=0.0)
            flat = drift <= 0.10
            print(json.dumps({"benchmark": "soak", "mix": args.mix, "model": str(model), "serve_flags": args.serve_flag,
                              "rounds": args.rounds, "requests_per_round": args.requests, "clients": args.clients,
                              "rss_mb": [round(v, 1) for v in rss], "req_per_s": [round(v, 2) for v in req_per_s],
                              "texts_per_s": [round(v, 1) for v in texts_per_s],
                              "mean_req_per_s": round(statistics.fmean(req_per_s), 2),
                              "last_vs_round_%d" % (base + 1): round(rss[-1] / rss[base] - 1, 3),
                              "max_drift_vs_round_%d" % (base + 1): round(drift, 3),
                              "flat_within_10pct": flat, "failures": failures}))
            return 0 if flat and failures == 0 else 1
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    sys.exit(main())
