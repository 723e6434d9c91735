"""Adding a task means adding one `TaskSpec` to `bertkit.tasks.registry` (and writing the functions it names): the
pipelines, `bertkit finetune`, `bertkit predict` and the server find it with no other edit.

The proof adds multiple choice (the model already has its head, `BertForMultipleChoice`) with every function it
needs defined here, patches the registry's table, and drives each consumer through its public door."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import BaseModel

from bertkit.cli import main as cli_main
from bertkit.pipelines.base import Pipeline
from bertkit.tasks import registry

HERE = __name__  # the registry names functions as "module:attribute"
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "which", "is", "a", "fruit", "apple", "car", "stone", "?"]
CALLS: list[tuple[str, dict[str, Any]]] = []  # what the command-side functions were called with


class ChoicePipeline(Pipeline):
    """{"question": ..., "choices": [...]} -> {"choice": index, "scores": [...]}."""

    model_class = "BertForMultipleChoice"

    def preprocess(self, batch: list[dict[str, Any]], **params: Any) -> Any:
        width = max(len(item["choices"]) for item in batch)
        firsts = [item["question"] for item in batch for _ in range(width)]
        seconds = [c for item in batch for c in item["choices"] + [""] * (width - len(item["choices"]))]
        encoded = self.tokenize(firsts, seconds)
        return {k: v.view(len(batch), width, -1) for k, v in encoded.items()}

    def postprocess(self, encoded: Any, outputs: Any, batch: list[Any], **params: Any) -> list[Any]:
        scores = outputs.logits.float().softmax(-1).tolist()
        return [{"choice": max(range(len(item["choices"])), key=row.__getitem__), "scores": row[:len(item["choices"])]}
                for item, row in zip(batch, scores)]


class ChoiceRequest(BaseModel):
    question: str
    choices: list[str]


def prepare_choice(service: Any, body: ChoiceRequest) -> Any:
    from bertkit.serve.prepare import Work
    from bertkit.serve.service import Item

    return Work([Item({"question": body.question, "choices": body.choices}, ())], [len(body.choices)])


def finetune_choices(model_dir: str, train_file: str, eval_file: str | None = None, args: Any = None, options: Any = None,
                     tokenizer_dir: str | None = None, max_train_examples: int | None = None,
                     max_eval_examples: int | None = None, num_choices: int = 2) -> dict[str, Any]:
    CALLS.append(("finetune", {"train_file": train_file, "num_choices": num_choices, "epochs": args.num_train_epochs}))
    return {"eval": {"accuracy": 1.0}, "metric_for_best": "accuracy", "best_metric": 1.0, "best_step": 1, "steps": 1,
            "train_runtime": 0.0}


def predict_choices_file(model: Any, tokenizer: Any, source: Path, output: Path, settings: dict, batch_size: int = 64,
                         **options: Any) -> list:
    CALLS.append(("predict", {"model": type(model).__name__, "batch_size": batch_size}))
    output.write_text("done\n")
    return ["done"]


MULTIPLE_CHOICE = registry.TaskSpec(
    "multiple-choice", "multiple-choice", f"{HERE}:ChoicePipeline", heads=("BertForMultipleChoice",),
    needs="a multiple-choice head (BertForMultipleChoice)", model_class="BertForMultipleChoice",
    default_metric="accuracy", summary="pick the answer among choices", recipe=f"{HERE}:finetune_choices",
    file_predictor=f"{HERE}:predict_choices_file", request_schema=f"{HERE}:ChoiceRequest",
    prepare=f"{HERE}:prepare_choice")


@pytest.fixture
def with_multiple_choice(monkeypatch):
    assert sys.modules[HERE]  # the "module:attribute" names resolve through this module
    monkeypatch.setattr(registry, "TASKS", (*registry.TASKS, MULTIPLE_CHOICE))
    CALLS.clear()


@pytest.fixture(scope="module")
def choice_folder(tmp_path_factory):
    from bertkit.model import BertConfig, BertForMultipleChoice

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("choice")
    config = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertForMultipleChoice(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    (folder / "bertkit_task.json").write_text(json.dumps({"task": "multiple-choice"}))
    return folder


def test_a_new_task_reaches_the_pipelines(with_multiple_choice, choice_folder):
    from bertkit.pipelines import pipeline

    pipe = pipeline("multiple-choice", model=choice_folder)
    result = pipe([{"question": "which is a fruit ?", "choices": ["apple", "car", "stone"]}])
    assert isinstance(pipe, ChoicePipeline) and type(pipe.model).__name__ == "BertForMultipleChoice"
    assert len(result[0]["scores"]) == 3 and abs(sum(result[0]["scores"]) - 1) < 1e-5


def test_a_new_task_reaches_finetune_and_predict(with_multiple_choice, choice_folder, tmp_path, capsys):
    train = tmp_path / "train.jsonl"
    train.write_text("{}\n")
    code = cli_main(["finetune", "multiple-choice", "--model", str(choice_folder), "--train", str(train),
                     "--output", str(tmp_path / "run"), "--num-choices", "4", "--epochs", "2"])
    assert code == 0 and "accuracy" in capsys.readouterr().out
    assert CALLS == [("finetune", {"train_file": str(train), "num_choices": 4, "epochs": 2.0})]
    code = cli_main(["predict", "--model", str(choice_folder), "--input", str(train), "--output",
                     str(tmp_path / "out.txt"), "--batch-size", "3"])
    assert code == 0 and CALLS[-1] == ("predict", {"model": "BertForMultipleChoice", "batch_size": 3})


def test_a_new_task_reaches_the_server(with_multiple_choice, choice_folder):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from bertkit.serve.app import create_app
    from bertkit.serve.service import ModelService

    service = ModelService(choice_folder)
    assert "multiple-choice" in service.tasks and "fill-mask" in service.unavailable
    with TestClient(create_app(service, max_wait_ms=1)) as client:
        answer = client.post("/multiple-choice", json={"question": "which is a fruit ?", "choices": ["apple", "car"]})
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["results"][0]["scores"]) == 2
        assert client.post("/classify", json={"inputs": "apple"}).status_code == 404


def test_every_task_names_functions_that_exist():
    for spec in registry.TASKS:
        named = [spec.pipeline_class, spec.reader, spec.evaluator, spec.recipe, spec.file_predictor,
                 spec.request_schema, spec.prepare, spec.folder_defaults]
        for reference in filter(None, named):
            assert callable(registry.resolve(reference)), f"{spec.name}: {reference}"
        assert spec.prepare and spec.request_schema, f"{spec.name} has no server route"
        if spec.fine_tunable:
            assert spec.recipe and spec.file_predictor and spec.reader and spec.evaluator, spec.name
