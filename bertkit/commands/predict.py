"""Run a fine-tuned model over a file (`bertkit predict`).

    bertkit predict --model runs/sst2 --input reviews.tsv --output predictions.tsv
        each row + label, score and one probability column per label (JSONL: a "probabilities" dict)
    bertkit predict --model runs/conll --input sentences.txt --output entities.jsonl
        one text per line -> its entities (type, score, word, start, end in the line), grouped ("simple")
    bertkit predict --model runs/conll --input test.conll --output tagged.conll
        CoNLL words -> the same lines with the predicted tag appended
    bertkit predict --model runs/squad --input questions.json --output answers.json
        SQuAD JSON -> {id: answer} (the official prediction format) + answers.nbest.json
    bertkit predict --model runs/squad --input questions.jsonl --output answers.jsonl
        {"question", "context"} per line -> answer, score, start, end

The output format follows the --output extension (.jsonl / .tsv / .csv / .json / .conll / .txt). Each task's
file reading and writing is `bertkit.pipelines.file_predictions`, named by the task registry.
"""
from __future__ import annotations

import argparse

from bertkit.commands.options import add_backend_arguments, backend_options
from bertkit.pipelines.base import is_onnx_file, resolve_backend
from bertkit.tasks import registry
from bertkit.tasks.evaluation import load_finetuned


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="folder written by `bertkit finetune` (or its .onnx export, with --backend onnxruntime)")
    parser.add_argument("--input", required=True, help="file to run the model over (see `bertkit predict --help`)")
    parser.add_argument("--output", required=True, help="where the predictions go; the extension picks the format")
    parser.add_argument("--task", choices=registry.fine_tunable_tasks(), help="default: read from the model folder")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1")
    parser.add_argument("--aggregation-strategy", default="simple", choices=("none", "simple", "first", "average", "max"),
                        help="NER on raw text: how sub-word predictions become entities")
    parser.add_argument("--top-k", type=int, default=1, help="QA on JSONL: answers per question")
    add_backend_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from bertkit.files import require_file, require_folder, require_output_file

    # the paths first: a wrong one is said before the model loads
    if is_onnx_file(args.model):
        require_file(args.model, "--model")
        args.backend = resolve_backend(args.backend, args.model)
    else:
        require_folder(args.model, "--model")
    source = require_file(args.input, "--input")
    output = require_output_file(args.output, "--output")
    options = backend_options(args)
    task, settings, model, tokenizer = load_finetuned(args.model, args.task, args.device, **options)
    output.parent.mkdir(parents=True, exist_ok=True)
    predict_file = registry.resolve(registry.get_task(task).file_predictor)
    rows = predict_file(model, tokenizer, source, output, settings, batch_size=args.batch_size,
                        aggregation_strategy=args.aggregation_strategy, top_k=args.top_k)
    print(f"{len(rows)} predictions written to {output}")
    return 0
