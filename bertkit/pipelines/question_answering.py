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
from bertkit.model.inference import predict
from bertkit.pipelines.base import Pipeline
from bertkit.tasks.qa import QAExample, postprocess, prepare_features


class QuestionAnsweringPipeline(Pipeline):
    model_class = "BertForQuestionAnswering"
    parameters = ("top_k", "doc_stride", "max_answer_len", "max_seq_len", "max_question_len",
                  "handle_impossible_answer")

    def __call__(self, inputs: Any = None, question: str | list[str] | None = None,
                 context: str | list[str] | None = None, batch_size: int | None = None, **params: Any) -> Any:
        self.check_parameters(params)
        params = {**self.default_params, **params}
        if inputs is None:
            if question is None or context is None:
                raise ValueError("give question=... and context=... (or a {'question', 'context'} dict)")
            if isinstance(question, list) != isinstance(context, list):
                raise ValueError("question and context must both be texts or both be lists of the same length")
            inputs = ([{"question": q, "context": c} for q, c in zip(question, context, strict=True)]
                      if isinstance(question, list) else {"question": question, "context": context})
        items = inputs if isinstance(inputs, list) else [inputs]
        examples = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "question" not in item or "context" not in item:
                raise ValueError("each input must be a dict with 'question' and 'context' keys")
            if not str(item["context"]).strip():
                raise ValueError("the context is empty: the answer is read from the context, so give one")
            examples.append(QAExample(str(i), str(item["question"]), str(item["context"])))
        top_k = int(params.get("top_k", 1))
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        max_seq_len = int(params.get("max_seq_len", min(384, self.max_length)))
        features = prepare_features(examples, self.tokenizer, max_seq_length=max_seq_len,
                                    doc_stride=int(params.get("doc_stride", min(128, max_seq_len // 2))),
                                    max_query_length=int(params.get("max_question_len", 64)), with_positions=False)
        outputs = predict(self.model, features, PaddingCollator(self.tokenizer.pad_token_id),
                          batch_size=batch_size or self.batch_size)
        _, nbest = postprocess(examples, features, outputs["start_logits"], outputs["end_logits"],
                               n_best_size=max(20, top_k), max_answer_length=int(params.get("max_answer_len", 15)),
                               version_2_with_negative=bool(params.get("handle_impossible_answer", False)),
                               rank_by="probability")
        results = []
        for example in examples:
            answers = [{"score": c["score"], "start": c["start"], "end": c["end"], "answer": c["text"]}
                       for c in nbest[example.id][:top_k]]
            results.append(answers[0] if top_k == 1 else answers)
        return results if isinstance(inputs, list) else results[0]
