"""Extractive question answering for a context of any length.

    qa = pipeline("question-answering", model="runs/squad")
    qa(question="Where was Chopin born?", context=long_text)
    # {'score': 0.81, 'start': 120, 'end': 138, 'answer': 'Żelazowa Wola'}
    qa([{"question": ..., "context": ...}, ...], top_k=3)

A context longer than the window is cut into overlapping windows (max_seq_len 384, doc_stride 128
tokens shared, question cut to max_question_len 64 pieces) by `bertkit.tasks.qa.prepare_features`;
the answer is the span with the highest p(start) * p(end) over all windows (softmax over each window's
context tokens and [CLS]), at most max_answer_len tokens (15, HuggingFace's pipeline default), read from
the original context by character offsets (`bertkit.tasks.qa.postprocess`). handle_impossible_answer
lets the empty answer win when [CLS] scores higher.
"""
from __future__ import annotations

from typing import Any

from bertkit.data.collators import PaddingCollator
from bertkit.errors import UserError
from bertkit.model.inference import predict
from bertkit.pipelines.base import Pipeline
from bertkit.tasks.qa import QAExample, postprocess, prepare_features
from bertkit.tokenizer.normalize import replace_surrogates


class QuestionAnsweringPipeline(Pipeline):
    model_class = "BertForQuestionAnswering"
    parameters = ("top_k", "doc_stride", "max_answer_len", "max_seq_len", "max_question_len",
                  "handle_impossible_answer")

    def inputs_of(self, inputs: Any = None, question: str | list[str] | None = None,
                  context: str | list[str] | None = None, **params: Any) -> tuple[list[Any], bool, dict[str, Any]]:
        if inputs is None:  # qa(question=..., context=...), texts or lists of them
            if question is None or context is None:
                raise UserError("give question=... and context=... (or a {'question', 'context'} dict)")
            if isinstance(question, list) != isinstance(context, list):
                raise UserError("question and context must both be texts or both be lists of the same length")
            inputs = ([{"question": q, "context": c} for q, c in zip(question, context, strict=True)]
                      if isinstance(question, list) else {"question": question, "context": context})
        return super().inputs_of(inputs, **params)

    def preprocess(self, batch: list[Any], top_k: int = 1, max_seq_len: int | None = None, doc_stride: int | None = None,
                   max_question_len: int = 64, **params: Any) -> dict[str, Any]:
        """The batch's questions as examples, and their windows as features (a long context gives several)."""
        examples = []
        for i, item in enumerate(batch):
            if not isinstance(item, dict) or "question" not in item or "context" not in item:
                raise UserError("each input must be a dict with 'question' and 'context' keys")
            if not str(item["context"]).strip():
                raise UserError("the context is empty: the answer is read from the context, so give one")
            # a lone surrogate would be sliced into the answer, which no UTF-8 output can hold: U+FFFD instead
            examples.append(QAExample(str(i), replace_surrogates(str(item["question"])),
                                      replace_surrogates(str(item["context"]))))
        if int(top_k) < 1:
            raise UserError(f"top_k must be at least 1, got {top_k}")
        max_seq_len = int(max_seq_len or min(384, self.max_length))
        features = prepare_features(examples, self.tokenizer, max_seq_length=max_seq_len,
                                    doc_stride=int(doc_stride or min(128, max_seq_len // 2)),
                                    max_query_length=int(max_question_len), with_positions=False)
        return {"examples": examples, "features": features}

    def forward(self, encoded: dict[str, Any], **params: Any) -> dict[str, Any]:
        # every window of the batch's contexts, in batches of windows (length-sorted by `predict`)
        return predict(self.model, encoded["features"], PaddingCollator(self.tokenizer.pad_token_id),
                       batch_size=max(self.batch_size, len(encoded["examples"])), precision=self.precision)

    def postprocess(self, encoded: dict[str, Any], outputs: dict[str, Any], batch: list[Any], top_k: int = 1,
                    max_answer_len: int = 15, handle_impossible_answer: bool = False, **params: Any) -> list[Any]:
        examples, top_k = encoded["examples"], int(top_k)
        _, nbest = postprocess(examples, encoded["features"], outputs["start_logits"], outputs["end_logits"],
                               n_best_size=max(20, top_k), max_answer_length=int(max_answer_len),
                               version_2_with_negative=bool(handle_impossible_answer), rank_by="probability")
        results = []
        for example in examples:
            answers = [{"score": c["score"], "start": c["start"], "end": c["end"], "answer": c["text"]}
                       for c in nbest[example.id][:top_k]]
            results.append(answers[0] if top_k == 1 else answers)
        return results
