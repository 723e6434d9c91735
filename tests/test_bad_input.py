"""Bad input found by probing (issue 14): each case is a table row, input -> the error and the message it must give.

Every row reproduces a reported problem (a traceback, a message that does not name the file, garbage accepted,
code run from a pickle) and pins the clear one-line answer. Command rows run `bertkit.cli.main` in-process and
check the exit status, the one line on stderr and that no traceback escaped.
"""
from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from bertkit.cli import main as cli_main
from bertkit.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "bertkit" / "samples"
MARKER = "PWNED"  # the file a planted pickle would create if any of its code ran


class Evil:
    """Unpickling this runs `open(<marker>, "w")`, i.e. creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant_pickle(path: Path, marker: Path, how: str = "torch") -> Path:
    payload = {"weights": Evil(marker), "step": 1}
    if how == "torch":
        torch.save(payload, path)  # a zip archive, as torch.save writes
    elif how == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))  # a bare legacy pickle
    else:  # pickle.dump as it comes (protocol 4 or 5, or 0): torch's reader fails on its first opcode
        path.write_bytes(pickle.dumps(payload, protocol=int(how.removeprefix("pickle"))))
    return path


def binary_file(folder: Path) -> Path:
    path = folder / "random.bin"
    path.write_bytes(bytes(range(256)) * 64)  # NUL bytes and undecodable ones
    return path


def a_file(folder: Path) -> Path:
    path = folder / "a_file"
    path.write_text("not a folder\n")
    return path


def a_folder(folder: Path) -> Path:
    path = folder / "a_folder"
    path.mkdir(exist_ok=True)
    return path


def tiny_checkpoint_run(folder: Path, steps=(1, 2)) -> tuple[Path, Callable]:
    """A run folder with step-* checkpoints of a tiny model; returns it and a maker of fresh (model, opt, sched)."""
    from bertkit.model import BertConfig, BertForPreTraining
    from bertkit.train import checkpoint as ckpt
    from bertkit.train.optim import build_optimizer, linear_warmup_decay

    def make(seed: int = 0):
        torch.manual_seed(seed)
        model = BertForPreTraining(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                              intermediate_size=32, max_position_embeddings=32))
        optimizer = build_optimizer(model, "adamw", lr=1e-3)
        return model, optimizer, linear_warmup_decay(optimizer, 2, 20)

    model, optimizer, scheduler = make()
    for step in steps:
        ckpt.save_checkpoint(folder, step, model, optimizer=optimizer, scheduler=scheduler, extra={"at": step})
    return folder, make


def resized(tmp: Path, folder: Path, **fields) -> Path:
    """The MiniLM folder (its files linked) with `fields` changed in config.json."""
    import json

    model_dir = tmp / "resized"
    model_dir.mkdir()
    for item in Path(folder).iterdir():
        if item.is_file() and item.name != "config.json":
            (model_dir / item.name).symlink_to(item)
    config = json.loads((Path(folder) / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, **fields}))
    return model_dir


def load_resized(**fields):
    def run(tmp, folder):
        from bertkit.model import BertModel

        BertModel.from_pretrained(resized(tmp, folder, **fields))
    return run


def build(**fields):
    def run(tmp, folder):
        from bertkit.model import BertConfig, BertModel

        BertModel(BertConfig(**fields))
    return run


def vocabulary(kind: str):
    def run(tmp, folder):
        from bertkit.tokenizer import BertTokenizer

        vocab = tmp / "vocab.txt"
        if kind == "long token":
            vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n" + "x" * (10 << 20) + "\n")
        else:  # 200 MB, sparse: its size is refused before a byte is read
            with open(vocab, "wb") as file:
                file.truncate(200 << 20)
        BertTokenizer.from_pretrained(tmp)
    return run


# ---------------------------------------------------------------------------------------------- the table
@dataclass
class Case:
    name: str
    run: Callable[[Path, Path], object]  # (tmp_path, minilm folder) -> runs the input; a command returns its argv
    error: type[BaseException] | None  # None: a command, checked by its exit status and stderr
    message: str  # regex the message must match


def cli(*argv):
    return lambda tmp, minilm: [a(tmp, minilm) if callable(a) else a for a in argv]


def minilm(tmp, folder):
    return str(folder)


def wiki(tmp, folder):
    return str(SAMPLES / "wiki_en.txt")


def call(fn):
    return lambda tmp, folder: fn(tmp, folder)


def shard_index(shard: str):
    """A model folder whose shard index names `shard` (a malicious pickle planted there)."""
    def run(tmp, folder):
        from bertkit.model import BertModel

        model_dir = tmp / "model"
        model_dir.mkdir()
        (model_dir / "config.json").write_text((Path(folder) / "config.json").read_text())
        outside = plant_pickle(tmp / "outside.bin", tmp / MARKER)
        target = str(outside) if shard == "ABSOLUTE" else shard
        (model_dir / "pytorch_model.bin.index.json").write_text(f'{{"weight_map": {{"embeddings.x": "{target}"}}}}')
        BertModel.from_pretrained(model_dir)
    return run


def planted_weights(how: str):
    def run(tmp, folder):
        from bertkit.model import BertModel

        model_dir = tmp / "model"
        model_dir.mkdir()
        (model_dir / "config.json").write_text((Path(folder) / "config.json").read_text())
        plant_pickle(model_dir / "pytorch_model.bin", tmp / MARKER, how)
        BertModel.from_pretrained(model_dir)
    return run


def damaged_training_state(kind: str):
    """The newest checkpoint, asked for by its folder (so no fallback): a clear error naming the file."""
    def run(tmp, folder):
        from bertkit.train import checkpoint as ckpt

        run_dir, make = tiny_checkpoint_run(tmp / "run")
        state = run_dir / "step-00000002" / "training_state.pt"
        if kind == "unsafe":
            plant_pickle(state, tmp / MARKER)
        else:
            state.write_bytes(state.read_bytes()[:300])
        model, optimizer, scheduler = make(seed=1)
        ckpt.load_checkpoint(run_dir / "step-00000002", model, optimizer, scheduler)
    return run


def decode(ids):
    def run(tmp, folder):
        from bertkit import BertTokenizer

        BertTokenizer.from_pretrained(folder).decode(ids)
    return run


def tokens_to_string(tokens):
    def run(tmp, folder):
        from bertkit import BertTokenizer

        BertTokenizer.from_pretrained(folder).convert_tokens_to_string(tokens)
    return run


CASES = [
    # 3. OS errors: a file where a folder is to be written, a folder where a file is
    Case("prepare-corpus --output FILE", cli("prepare-corpus", wiki, "--tokenizer", minilm, "--output",
                                             lambda t, m: str(a_file(t)), "--no-progress"),
         None, r"--output '.*a_file' is a file; pass a folder path"),
    Case("pretrain --output FILE", cli("pretrain", "--data", lambda t, m: str(a_folder(t)), "--output",
                                       lambda t, m: str(a_file(t))), None, r"--output '.*a_file' is a file"),
    Case("demo --out FILE (any OSError: one line)", cli("demo", "--quick", "--out", lambda t, m: str(a_file(t))),
         None, r"file exists: '.*a_file'; something is already there"),
    Case("predict --output DIR", cli("predict", "--model", minilm, "--input", wiki, "--output",
                                     lambda t, m: str(a_folder(t))), None, r"--output '.*a_folder' is a folder; pass a file path"),
    # 4. garbage accepted silently
    Case("finetune ner --train <plain text>", cli("finetune", "ner", "--model", minilm, "--train", wiki, "--output",
                                                   lambda t, m: str(t / "ner")),
         None, r"wiki_en.txt line 1: 'France.' \(column -1\) is not a NER tag"),
    Case("train-tokenizer <binary>", cli("train-tokenizer", lambda t, m: str(binary_file(t)), "-o",
                                         lambda t, m: str(t / "tok"), "--quiet"), None, r"random.bin is not a text file"),
    Case("prepare-corpus <binary>", cli("prepare-corpus", lambda t, m: str(binary_file(t)), "--tokenizer", minilm,
                                        "--output", lambda t, m: str(t / "corpus"), "--no-progress"),
         None, r"random.bin is not a text file"),
    # 6. binary files are named; a folder for a file and a file for a folder are said as such
    Case("tokenize --tokenizer <binary>", cli("tokenize", "--tokenizer", lambda t, m: str(binary_file(t)), "hello"),
         None, r"random.bin is not a text file"),
    Case("prepare-corpus --tokenizer <binary>", cli("prepare-corpus", wiki, "--tokenizer", lambda t, m: str(binary_file(t)),
                                                    "--output", lambda t, m: str(t / "corpus"), "--no-progress"),
         None, r"random.bin is not a text file"),
    Case("embed --file <binary>", cli("embed", "--model", minilm, "--file", lambda t, m: str(binary_file(t))),
         None, r"random.bin is not a text file"),
    Case("nsp --file <binary>", cli("nsp", "--model", minilm, "--file", lambda t, m: str(binary_file(t))),
         None, r"random.bin is not a text file"),
    Case("plot <binary>", cli("plot", lambda t, m: str(binary_file(t))), None, r"random.bin is not a text file"),
    Case("finetune ner --train <binary>", cli("finetune", "ner", "--model", minilm, "--train", lambda t, m: str(binary_file(t)),
                                              "--output", lambda t, m: str(t / "ner")), None, r"random.bin is not a text file"),
    Case("finetune qa --train <binary>", cli("finetune", "qa", "--model", minilm, "--train", lambda t, m: str(binary_file(t)),
                                             "--output", lambda t, m: str(t / "qa")), None, r"random.bin is not a text file"),
    Case("embed --file DIR", cli("embed", "--model", minilm, "--file", lambda t, m: str(a_folder(t))),
         None, r"--file '.*a_folder' is a folder; pass a file"),
    Case("fill-mask --model FILE", cli("fill-mask", "--model", lambda t, m: str(a_file(t)), "a [MASK]"),
         None, r"--model '.*a_file' is a file; pass the folder"),
    Case("finetune --train DIR", cli("finetune", "ner", "--model", minilm, "--train", lambda t, m: str(a_folder(t)),
                                     "--output", lambda t, m: str(t / "ner")), None, r"--train '.*a_folder' is a folder"),
    Case("decode([inf])", decode([float("inf")]), TypeError, r"token ids must be integers, got float inf"),
    Case("decode([1.5])", decode([101, 1.5]), TypeError, r"token ids must be integers, got float 1.5"),
    Case("convert_tokens_to_string([1, 2])", tokens_to_string([1, 2]), TypeError,
         r"convert_tokens_to_string takes token strings, got int 1; for ids use decode\(\)"),
    Case("shard index naming ../outside.bin", shard_index("../outside.bin"), ValueError,
         r"names shard '../outside.bin', which is outside the model folder"),
    Case("shard index naming an absolute path", shard_index("ABSOLUTE"), ValueError, r"which is outside the model folder"),
    # 2. + issue 12: training state and weights that are corrupt or hold code
    Case("training_state.pt truncated", damaged_training_state("truncated"), ValueError,
         r"step-00000002 is damaged: could not read training state .*training_state.pt .*truncated or corrupt.*; "
         r"an earlier checkpoint of the run can be used: step-00000001"),
    Case("training_state.pt holds code", damaged_training_state("unsafe"), ValueError,
         r"training state .*training_state.pt is a pickle that would run code \([\w.]*open\) when loaded; bertkit "
         r"refused it and ran nothing"),
    Case("pytorch_model.bin holds code (torch.save)", planted_weights("torch"), ValueError,
         r"weights file .*pytorch_model.bin is a pickle that would run code \([\w.]*open\).*ran nothing.*"
         r"convert it once to safetensors.*save_file"),
    Case("pytorch_model.bin holds code (bare pickle)", planted_weights("pickle"), ValueError,
         r"weights file .*pytorch_model.bin is a pickle that would run code \([\w.]*open\).*ran nothing.*safetensors"),
    Case("pytorch_model.bin holds code (pickle.dumps, newest protocol)", planted_weights(f"pickle{pickle.HIGHEST_PROTOCOL}"),
         ValueError, r"weights file .*pytorch_model.bin is a pickle that would run code \([\w.]*open\).*safetensors"),
    # issue 23: sizes from hostile files, refused before anything is allocated
    Case("config.json hidden_size 12,000,000 (embed)", cli("embed", "--model", lambda t, m: str(resized(t, m, hidden_size=12_000_000)),
                                                       "a text"), None, r"config.json describes a model of .* parameters .*"
                                                                        r"hidden_size=12,000,000.*fix those fields"),
    Case("config.json intermediate_size 10^9", load_resized(intermediate_size=10**9), UserError,
         r"config.json describes a model of [\d,]+ parameters \([\d,.]+ GB\), more than the .* GB of memory available: "
         r"the encoder layers alone .*intermediate_size=1,000,000,000"),
    Case("config.json hidden_size 4096 over small weights", load_resized(hidden_size=4096, num_attention_heads=16),
         UserError, r"describes a model of [\d,]+ parameters but the weights file holds only [\d,]+: .*hidden_size=4,096"),
    Case("BertModel(BertConfig(hidden_size=12,000,000))", build(hidden_size=12_000_000, num_attention_heads=12), UserError,
         r"the config describes a model of .* hidden_size=12,000,000"),
    Case("vocab.txt with a 10 MB token", vocabulary("long token"), ValueError,
         r"vocab.txt holds a token of 10,485,760 characters .*the limit is 1024"),
    Case("vocab.txt of 200 MB", vocabulary("huge"), ValueError, r"vocab.txt is 210 MB, far larger than any real vocabulary"),
    Case("pytorch_model.bin holds code (pickle protocol 0)", planted_weights("pickle0"), ValueError,
         r"weights file .*pytorch_model.bin is a pickle that would run code \(\w+.open\).*safetensors"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_a_clear_error(case, tmp_path, minilm_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if case.error is None:
        argv = case.run(tmp_path, minilm_dir)
        status = cli_main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("bertkit ")]
        assert status == 2, err
        assert "Traceback" not in err
        assert len(lines) == 1 and re.search(case.message, lines[0]), err
    else:
        with pytest.raises(case.error) as caught:
            case.run(tmp_path, minilm_dir)
        message = str(caught.value)
        assert re.search(case.message, message), message
        assert "\n" not in message
        # torch's own advice (weights_only=False) never, except in the conversion of weights one trusts
        assert "weights_only" not in message or "only if, you trust where it came from, convert it" in message
    assert not (tmp_path / MARKER).exists(), "a planted pickle ran code"


# ---------------------------------------------------------------------------------------------- resume falls back
DAMAGE = {
    "truncated model.safetensors": lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:1000]),
    "garbage config.json": lambda f: (f / "config.json").write_text("{garbage"),
    "missing training_state.pt": lambda f: (f / "training_state.pt").unlink(),
    "corrupt training_state.pt": lambda f: (f / "training_state.pt").write_bytes(os.urandom(2000)),
    "training_state.pt holds code": lambda f: plant_pickle(f / "training_state.pt", f.parent.parent / MARKER),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_resume_falls_back_to_the_newest_intact_checkpoint(damage, tmp_path, caplog):
    from bertkit.train import checkpoint as ckpt

    run_dir, make = tiny_checkpoint_run(tmp_path / "run", steps=(1, 2, 3))
    DAMAGE[damage](run_dir / "step-00000003")
    DAMAGE[damage](run_dir / "step-00000002")
    reference, _, _ = make()
    model, optimizer, scheduler = make(seed=1)
    # resume as `pretrain --resume` and `Trainer.train(resume_from_checkpoint=True)` do
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(run_dir), model, optimizer, scheduler, fallback=True)
    assert state["path"].name == "step-00000001" and state["step"] == 1 and state["extra"] == {"at": 1}
    assert "checkpoint" in caplog.text and "step-00000003 is damaged" in caplog.text
    assert "resuming from" in caplog.text and "step-00000001" in caplog.text
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert not (tmp_path / MARKER).exists()
    # a run folder falls back too; when nothing is intact the error lists what is wrong with each
    assert ckpt.load_checkpoint(run_dir, *make(seed=2))["step"] == 1
    DAMAGE[damage](run_dir / "step-00000001")
    with pytest.raises(ValueError, match="no intact checkpoint in .*step-00000003: .*step-00000001: "):
        ckpt.load_checkpoint(run_dir, *make(seed=2))


def test_trainer_resume_skips_a_damaged_checkpoint(tmp_path, caplog):
    from bertkit import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    def classifier(seed):
        torch.manual_seed(seed)
        return BertForSequenceClassification(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                                        num_attention_heads=2, intermediate_size=32,
                                                        max_position_embeddings=64, num_labels=2))

    rows = [{"input_ids": [2, 5 + i % 2, 10 + i, 3], "label": i % 2} for i in range(16)]

    def arguments(max_steps):
        return TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=max_steps, per_device_train_batch_size=4,
                                 learning_rate=1e-3, save_strategy="steps", save_steps=2, logging_steps=1,
                                 disable_tqdm=True, use_cpu=True, seed=3)

    Trainer(model=classifier(0), args=arguments(4), train_dataset=rows).train()
    newest = tmp_path / "run" / "checkpoint-4"
    (newest / "model.safetensors").write_bytes((newest / "model.safetensors").read_bytes()[:500])
    trainer = Trainer(model=classifier(1), args=arguments(6), train_dataset=rows)
    trainer.train(resume_from_checkpoint=True)
    assert "checkpoint-4 is damaged" in caplog.text and "resuming from" in caplog.text
    assert trainer.state.global_step == 6
    # named explicitly, the damaged folder is an error that points at the earlier one instead
    with pytest.raises(ValueError, match=r"checkpoint-6 is damaged: .*an earlier checkpoint of the run can be used: "
                                         r"checkpoint-4"):
        latest = tmp_path / "run" / "checkpoint-6"
        (latest / "config.json").write_text("{garbage")
        Trainer(model=classifier(1), args=arguments(8), train_dataset=rows).train(resume_from_checkpoint=str(latest))


# --------------------------------------------------------------------- user errors and bugs are told apart
def test_user_errors_are_one_line_and_bugs_keep_their_traceback(tmp_path, capsys, monkeypatch):
    import bertkit.commands.tokenize as tokenize_command
    from bertkit.errors import MissingFileError, UserError

    assert issubclass(UserError, ValueError) and issubclass(MissingFileError, FileNotFoundError)
    missing = tmp_path / "nowhere"
    assert cli_main(["tokenize", "hello", "--tokenizer", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "nowhere" in err
    with pytest.raises(UserError):  # --traceback shows the user error's traceback too
        cli_main(["tokenize", "hello", "--tokenizer", str(missing), "--traceback"])
    monkeypatch.setenv("BERTKIT_TRACEBACK", "1")
    with pytest.raises(UserError):
        cli_main(["tokenize", "hello", "--tokenizer", str(missing)])
    monkeypatch.delenv("BERTKIT_TRACEBACK")

    def buggy(args):  # a ValueError from deep inside a library is a bug, not bad input
        return int("not a number")

    monkeypatch.setattr(tokenize_command, "run", buggy)
    with pytest.raises(ValueError, match="invalid literal"):
        cli_main(["tokenize", "hello", "--tokenizer", str(missing)])


# --------------------------------------------------------------------- commands that need a head refuse one made up
def test_commands_and_server_refuse_a_head_the_checkpoint_lacks(minilm_dir, tmp_path, capsys):
    """all-MiniLM-L6-v2 is an encoder: `fill-mask` and `nsp` on it would answer from random heads. The commands and
    the server refuse and name the missing weights; the Python pipeline keeps HF's behaviour (a warning)."""
    import json

    from bertkit.pipelines import pipeline

    for argv, missing in ((["fill-mask", "--model", str(minilm_dir), "Paris is the [MASK] of France."],
                           "cls.predictions.bias"),
                          (["nsp", "--model", str(minilm_dir), "It rained.", "The grass got wet."], "cls.seq_relationship")):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "no trained weights" in err and missing in err and "BertForPreTraining" in err, err
    assert pipeline("fill-mask", model=minilm_dir)("Paris is the [MASK] of France.", top_k=1)  # HF: warns, runs

    # a folder that claims an MLM head in its config but whose weights are the encoder's only
    folder = tmp_path / "claims-mlm"
    folder.mkdir()
    for item in minilm_dir.iterdir():
        if item.is_file():
            (folder / item.name).write_bytes(item.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["BertForMaskedLM"]}))
    from bertkit.serve.service import ModelService

    service = ModelService(folder)
    assert "fill-mask" in service.unavailable and "no trained weights" in service.unavailable["fill-mask"]
    assert "embed" in service.tasks
