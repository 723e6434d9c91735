"""The Trainer's checkpoints are HF's `checkpoint-N/` folders (issue 20, item 6): HF's Trainer resumes a run that
bertkit's started and bertkit's resumes HF's, each continuing with the losses of the uninterrupted run, and
`save_total_limit` with `load_best_model_at_end` keeps the folders HF keeps."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import bertkit

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A tiny classifier both libraries load (no head left to initialise), dropout off."""
    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64, num_labels=2,
                                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def rows(n: int = 32) -> list[dict]:
    rng = np.random.default_rng(0)  # equal lengths: HF's default collator stacks them as they are
    return [{"input_ids": [2, 5 + i % 2, *rng.integers(10, 64, size=9).tolist(), 3], "attention_mask": [1] * 12,
             "labels": i % 2} for i in range(n)]


def train(lib, folder, output, resume=None, **fields):
    lib.set_seed(42)
    model = lib.BertForSequenceClassification.from_pretrained(folder)
    settings = {"max_steps": 8, "per_device_train_batch_size": 4, "learning_rate": 5e-3, "logging_steps": 1,
                "save_strategy": "steps", "save_steps": 4, "use_cpu": True, "disable_tqdm": True,
                "report_to": "none", "seed": 42, **fields}
    if lib is bertkit:  # HF's random order (bertkit groups by length unless told not to)
        settings["group_by_length"] = False
    trainer = lib.Trainer(model=model, args=lib.TrainingArguments(output_dir=str(output), **settings),
                          train_dataset=rows(), eval_dataset=rows(8) if "eval_strategy" in fields else None)
    trainer.train(resume_from_checkpoint=resume)
    return trainer, {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e}


def test_checkpoint_folders_hold_hf_trainer_files(tiny_folder, tmp_path):
    train(bertkit, tiny_folder, tmp_path)
    folder = tmp_path / "checkpoint-4"
    for name in ("config.json", "model.safetensors", "trainer_state.json", "optimizer.pt", "scheduler.pt",
                 "rng_state.pth"):
        assert (folder / name).is_file(), name
    state = transformers.TrainerState.load_from_json(str(folder / "trainer_state.json"))  # HF's reader takes it
    assert state.global_step == 4 and state.max_steps == 8 and len([e for e in state.log_history if "loss" in e]) == 4


@pytest.mark.parametrize("first, then", [("bertkit", "transformers"), ("transformers", "bertkit")])
def test_one_library_resumes_the_others_run(first, then, tiny_folder, tmp_path):
    libraries = {"bertkit": bertkit, "transformers": transformers}
    _, straight = train(transformers, tiny_folder, tmp_path / "straight")
    train(libraries[first], tiny_folder, tmp_path / "run", max_steps=8)
    resumed, losses = train(libraries[then], tiny_folder, tmp_path / "run2", resume=str(tmp_path / "run" / "checkpoint-4"))
    assert resumed.state.global_step == 8
    assert sorted(s for s in losses if s > 4) == [5, 6, 7, 8]
    assert [losses[s] for s in range(5, 9)] == pytest.approx([straight[s] for s in range(5, 9)], abs=1e-4)


def test_bertkit_resumes_the_newest_hf_checkpoint_by_number(tiny_folder, tmp_path):
    train(transformers, tiny_folder, tmp_path, max_steps=12, save_steps=2)  # checkpoint-2 ... checkpoint-12
    trainer, _ = train(bertkit, tiny_folder, tmp_path, max_steps=14, save_steps=2, resume=True)
    assert trainer.state.global_step == 14
    assert (tmp_path / "checkpoint-14").is_dir()


@pytest.mark.parametrize("limit", [1, 2])
def test_save_total_limit_and_best_model_keep_what_hf_keeps(limit, tiny_folder, tmp_path):
    kept, best = {}, {}
    for name, lib in (("bertkit", bertkit), ("transformers", transformers)):
        trainer, _ = train(lib, tiny_folder, tmp_path / name, max_steps=10, save_steps=2, eval_strategy="steps",
                           eval_steps=2, save_total_limit=limit, load_best_model_at_end=True,
                           metric_for_best_model="loss", greater_is_better=True)  # a best that is not the last
        kept[name] = sorted(p.name for p in (tmp_path / name).glob("checkpoint-*"))
        best[name] = trainer.state.best_model_checkpoint.rsplit("/", 1)[-1]
        saved = json.loads((tmp_path / name / kept[name][-1] / "trainer_state.json").read_text())
        assert saved["best_model_checkpoint"].endswith(best[name])
    assert kept["bertkit"] == kept["transformers"] and best["bertkit"] == best["transformers"]
    assert best["bertkit"] in kept["bertkit"]


def test_include_for_metrics_gives_inputs_and_losses_as_hf_does(tiny_folder, tmp_path):
    seen = {}
    for name, lib in (("bertkit", bertkit), ("transformers", transformers)):
        def metrics(eval_pred, name=name):
            predictions, labels, inputs, losses = eval_pred  # unpacks as HF's, four items when both are asked for
            seen[name] = (inputs, losses, eval_pred.inputs is inputs)
            return {"n": float(len(labels))}

        model = lib.BertForSequenceClassification.from_pretrained(tiny_folder)
        args = lib.TrainingArguments(output_dir=str(tmp_path / name), per_device_eval_batch_size=4, use_cpu=True,
                                     report_to="none", include_for_metrics=["inputs", "loss"])
        lib.Trainer(model=model, args=args, eval_dataset=rows(8), compute_metrics=metrics).evaluate()
    (ours, our_losses, same), (theirs, their_losses, _) = seen["bertkit"], seen["transformers"]
    assert same and np.array_equal(ours, theirs)
    np.testing.assert_allclose(our_losses, their_losses, atol=1e-5)
    with pytest.raises(ValueError, match="include_for_metrics"):
        bertkit.TrainingArguments(output_dir=str(tmp_path), include_for_metrics=["labels"])
    assert bertkit.TrainingArguments(output_dir=str(tmp_path), include_inputs_for_metrics=True).include_for_metrics \
        == ["inputs"]
