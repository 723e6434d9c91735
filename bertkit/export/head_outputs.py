"""What each exportable model class outputs (`HEADS`: names, which have a sequence axis, the output class the
runtime rebuilds, and how the head runs on the encoder's output), and `require` for the optional onnx packages.
Both the exporter (`onnx.py`) and the runtime (`ort.py`) read it, so neither imports the other for it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import Tensor, nn

from bertkit.errors import UserError
from bertkit.model import outputs as model_outputs
from bertkit.model.bert import BertModel
from bertkit.utils.extras import require_extra


def require(module: str) -> Any:
    """Import onnx / onnxruntime or say how to get them (they are the optional extra bertkit[onnx])."""
    return require_extra(module, "onnx", "ONNX export and the ONNX Runtime backend")


@dataclass(frozen=True)
class HeadSpec:
    outputs: tuple[str, ...]  # HF's output names, in graph order
    per_token: tuple[str, ...]  # outputs with a sequence axis (compared on real tokens only)
    output_class: type  # the bertkit ModelOutput the runtime rebuilds
    head: Callable[[Any, Tensor, Tensor | None], tuple[Tensor, ...]]  # (model, last_hidden_state, pooled) -> outputs


def _qa(model: Any, x: Tensor, pooled: Tensor | None) -> tuple[Tensor, Tensor]:
    start, end = model.qa_outputs(x).split(1, dim=-1)
    return start.squeeze(-1), end.squeeze(-1)


HEADS: dict[str, HeadSpec] = {
    "BertModel": HeadSpec(("last_hidden_state", "pooler_output"), ("last_hidden_state",),
                          model_outputs.BaseModelOutputWithPooling, lambda m, x, p: (x, p)),
    "BertForSequenceClassification": HeadSpec(("logits",), (), model_outputs.SequenceClassifierOutput,
                                              lambda m, x, p: (m.classifier(p),)),
    "BertForTokenClassification": HeadSpec(("logits",), ("logits",), model_outputs.TokenClassifierOutput,
                                           lambda m, x, p: (m.classifier(x),)),
    "BertForQuestionAnswering": HeadSpec(("start_logits", "end_logits"), ("start_logits", "end_logits"),
                                         model_outputs.QuestionAnsweringModelOutput, _qa),
    "BertForMaskedLM": HeadSpec(("logits",), ("logits",), model_outputs.MaskedLMOutput,
                                lambda m, x, p: (m.cls.predictions(x),)),
    "BertForNextSentencePrediction": HeadSpec(("logits",), (), model_outputs.NextSentencePredictorOutput,
                                              lambda m, x, p: (m.cls.seq_relationship(p),)),
    "BertForPreTraining": HeadSpec(("prediction_logits", "seq_relationship_logits"), ("prediction_logits",),
                                   model_outputs.BertForPreTrainingOutput, lambda m, x, p: m.cls(x, p)),
}


def head_spec(model: nn.Module) -> HeadSpec:
    """The spec of the model's class, or of the nearest bertkit class it derives from; a BertModel without a
    pooler exports last_hidden_state only."""
    for cls in type(model).__mro__:
        if cls.__name__ in HEADS:
            spec = HEADS[cls.__name__]
            if isinstance(model, BertModel) and model.pooler is None:
                spec = HeadSpec(spec.outputs[:1], spec.per_token, spec.output_class, lambda m, x, p: (x,))
            return spec
    raise UserError(
        f"cannot export {type(model).__name__}: ONNX export supports {', '.join(HEADS)} "
        "(BertForMultipleChoice takes [batch, choices, seq] inputs: export its .bert and score the choices yourself)"
    )
