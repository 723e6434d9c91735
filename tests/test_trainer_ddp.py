"""The Trainer on 2 CPU processes (DDP over gloo, as `torchrun --nproc-per-node 2 script.py` runs it): the loss
curve equals one process with the same global batch, the saved model is the same, only rank 0 writes, and a
resumed multi-process run continues."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

STEPS, GLOBAL_BATCH = 6, 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(folder: str, per_device: int, stop_at: int | None = None, resume: bool = False):
    from test_hf_trainer import token_rows

    from bertkit import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

    class Crash(TrainerCallback):  # stops as a crash would: after the checkpoint at step 3, before the next
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step == stop_at

    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    args = TrainingArguments(output_dir=folder, max_steps=STEPS, per_device_train_batch_size=per_device,
                             learning_rate=1e-3, logging_steps=1, save_strategy="steps", save_steps=3,
                             use_cpu=True, disable_tqdm=True, seed=3)
    trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=token_rows(48),
                      callbacks=[Crash()] if stop_at else [])
    output = trainer.train(resume_from_checkpoint=True if resume else None)
    trainer.save_model(folder + "/final")
    return trainer, output


def worker(rank: int, world: int, port: int, folder: str, resume_folder: str) -> None:
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    trainer, output = train(folder, GLOBAL_BATCH // world)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    Path(folder, f"losses-{rank}.json").write_text(json.dumps({"losses": losses, "train_loss": output.training_loss}))
    train(resume_folder, GLOBAL_BATCH // world, stop_at=4)  # step 4's work is lost; resumed from step 3:
    trainer, output = train(resume_folder, GLOBAL_BATCH // world, resume=True)
    Path(resume_folder, f"resumed-{rank}.json").write_text(json.dumps({"step": output.global_step,
                                                                        "train_loss": output.training_loss}))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_processes_train_as_one(tmp_path):
    single, single_output = train(str(tmp_path / "single"), GLOBAL_BATCH)
    expected = [e["loss"] for e in single.state.log_history if "loss" in e]
    mp.start_processes(worker, args=(2, free_port(), str(tmp_path / "ddp"), str(tmp_path / "ddp-resumed")), nprocs=2,
                       join=True, start_method="spawn")
    for rank in (0, 1):  # every rank logs the same averaged curve
        got = json.loads((tmp_path / "ddp" / f"losses-{rank}.json").read_text())
        assert got["losses"] == pytest.approx(expected, abs=2e-4)
        assert got["train_loss"] == pytest.approx(single_output.training_loss, abs=1e-4)
    from bertkit import BertForSequenceClassification

    ours = BertForSequenceClassification.from_pretrained(tmp_path / "ddp" / "final").state_dict()
    reference = BertForSequenceClassification.from_pretrained(tmp_path / "single" / "final").state_dict()
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name], atol=1e-5, rtol=1e-4)
    rows = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len([r for r in rows if '"split": "train"' in r]) == STEPS  # one writer, not two
    resumed = [json.loads((tmp_path / "ddp-resumed" / f"resumed-{r}.json").read_text()) for r in (0, 1)]
    assert [r["step"] for r in resumed] == [STEPS, STEPS]
    assert resumed[0]["train_loss"] == pytest.approx(single_output.training_loss, abs=1e-4)
