"""Task heads on top of BertModel. Each model keeps the encoder at `.bert` and its head under HF's names
(`cls.predictions`, `cls.seq_relationship`, `classifier`, `qa_outputs`), and returns its loss when given labels.

`cls.predictions` is a module of its own, callable on any [..., hidden] tensor, so a pretraining step can run
`model.bert(...)` and then the vocabulary projection on the masked positions only:

    hidden = model.bert(input_ids, attention_mask).last_hidden_state   # [batch, seq, hidden]
    logits = model.cls.predictions(hidden[labels != -100])             # [n_masked, vocab]
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertkit.errors import UserError

from .bert import BertModel, BertPreTrainedModel, activation
from .config import BertConfig
from .outputs import (
    BaseModelOutputWithPooling,
    BertForPreTrainingOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    NextSentencePredictorOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

OptTensor = Tensor | None
IGNORE_INDEX = -100  # label value that the losses skip (padding, special tokens, unmasked positions)


# --- the heads themselves ---------------------------------------------------------------------------------
class BertPredictionHeadTransform(nn.Module):
    """dense + activation + LayerNorm before the vocabulary projection."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    """hidden -> vocabulary logits. `decoder.weight` is tied to the word embeddings by the model;
    `decoder.bias` is `self.bias`, the output-only bias of HF's checkpoints (`cls.predictions.bias`)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.tie_bias()

    def tie_bias(self) -> None:
        self.decoder.bias = self.bias

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.transform(x))


class BertPreTrainingHeads(nn.Module):
    """The `cls` module: masked-LM predictions and/or the next-sentence classifier (2 classes: IsNext, NotNext)."""

    def __init__(self, config: BertConfig, masked_lm: bool = True, next_sentence: bool = True) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config) if masked_lm else None
        self.seq_relationship = nn.Linear(config.hidden_size, 2) if next_sentence else None

    def forward(self, sequence_output: Tensor | None = None, pooled_output: Tensor | None = None) -> tuple:
        mlm = self.predictions(sequence_output) if sequence_output is not None else None
        nsp = self.seq_relationship(pooled_output) if pooled_output is not None else None
        return mlm, nsp


def _encode(model: nn.Module, input_ids: OptTensor, attention_mask: OptTensor, token_type_ids: OptTensor,
            position_ids: OptTensor, inputs_embeds: OptTensor, output_attentions: bool | None,
            output_hidden_states: bool | None, unpad: bool | str | None = None) -> BaseModelOutputWithPooling:
    """The encoder's pass. unpad: "auto" for heads that read [CLS] only (identical outputs, faster on padded
    batches), False where padding positions reach the loss, None (BertModel's rule) for the rest."""
    if output_hidden_states:  # the hidden states at padding positions are returned: HF's values
        unpad = False
    return model.bert(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                      output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
                      unpad=unpad)


def _classifier_dropout(config: BertConfig) -> nn.Dropout:
    """The dropout before a classifier: config.classifier_dropout, or hidden_dropout_prob when unset (as HF)."""
    p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    return nn.Dropout(p)


def _cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over the positions whose label is not -100."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX)


# --- models -----------------------------------------------------------------------------------------------
class BertForMaskedLM(BertPreTrainedModel):
    """Fill in [MASK] tokens: logits [batch, seq, vocab]; loss = cross-entropy on labels != -100."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertPreTrainingHeads(config, next_sentence=False)
        self.post_init()

    def get_output_head(self) -> nn.Module:
        return self.cls.predictions

    def forward(
        self,
        input_ids: OptTensor = None,
        attention_mask: OptTensor = None,
        token_type_ids: OptTensor = None,
        position_ids: OptTensor = None,
        inputs_embeds: OptTensor = None,
        labels: OptTensor = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MaskedLMOutput | tuple:
        out = _encode(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                      output_attentions, output_hidden_states)
        logits = self.cls.predictions(out.last_hidden_state)
        loss = _cross_entropy(logits, labels) if labels is not None else None
        return self._return(MaskedLMOutput(loss, logits, out.hidden_states, out.attentions), return_dict)


class BertForNextSentencePrediction(BertPreTrainedModel):
    """Is sentence B the continuation of A? logits [batch, 2] (0 = IsNext, 1 = NotNext)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config, masked_lm=False)
        self.post_init()

    def forward(
        self,
        input_ids: OptTensor = None,
        attention_mask: OptTensor = None,
        token_type_ids: OptTensor = None,
        position_ids: OptTensor = None,
        inputs_embeds: OptTensor = None,
        labels: OptTensor = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> NextSentencePredictorOutput | tuple:
        if "next_sentence_label" in kwargs:  # the old HF name of `labels`
            labels = kwargs.pop("next_sentence_label")
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(kwargs)}")
        out = _encode(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                      output_attentions, output_hidden_states, unpad="auto")
        logits = self.cls.seq_relationship(out.pooler_output)
        loss = _cross_entropy(logits, labels) if labels is not None else None
        return self._return(NextSentencePredictorOutput(loss, logits, out.hidden_states, out.attentions), return_dict)


class BertForPreTraining(BertPreTrainedModel):
    """Both pretraining objectives; loss = masked-LM loss + next-sentence loss (when both labels are given)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.post_init()

    def get_output_head(self) -> nn.Module:
        return self.cls.predictions

    def forward(
        self,
        input_ids: OptTensor = None,
        attention_mask: OptTensor = None,
        token_type_ids: OptTensor = None,
        position_ids: OptTensor = None,
        inputs_embeds: OptTensor = None,
        labels: OptTensor = None,
        next_sentence_label: OptTensor = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BertForPreTrainingOutput | tuple:
        out = _encode(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                      output_attentions, output_hidden_states)
        mlm_logits, nsp_logits = self.cls(out.last_hidden_state, out.pooler_output)
        loss = None
        if labels is not None and next_sentence_label is not None:
            loss = _cross_entropy(mlm_logits, labels) + _cross_entropy(nsp_logits, next_sentence_label)
        output = BertForPreTrainingOutput(loss, mlm_logits, nsp_logits, out.hidden_states, out.attentions)
        return self._return(output, return_dict)


class BertForSequenceClassification(BertPreTrainedModel):
    """dropout + linear on the pooled [CLS]. The loss follows config.problem_type, inferred as HF does when unset:
    num_labels == 1 -> regression (MSE); integer labels -> single-label (cross-entropy);
    float labels [batch, num_labels] -> multi-label (BCE with logits)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def problem_type(self, labels: Tensor) -> str:
        """The config's problem type; unset, it is inferred from the labels and written into the config (as HF
        does), so a saved model says what it was trained for."""
        if self.config.problem_type is None:
            self.config.problem_type = ("regression" if self.num_labels == 1 else "single_label_classification"
                                        if labels.dtype in (torch.long, torch.int) else "multi_label_classification")
        return self.config.problem_type

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        problem = self.problem_type(labels)
        if problem == "regression":
            labels = labels.to(logits.dtype)
            if self.num_labels == 1:
                return F.mse_loss(logits.squeeze(), labels.squeeze())
            return F.mse_loss(logits, labels)
        if problem == "single_label_classification":
            return _cross_entropy(logits, labels)
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))

    def forward(
        self,
        input_ids: OptTensor = None,
        attention_mask: OptTensor = None,
        token_type_ids: OptTensor = None,
        position_ids: OptTensor = None,
        inputs_embeds: OptTensor = None,
        labels: OptTensor = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        out = _encode(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                      output_attentions, output_hidden_states, unpad="auto")
        logits = self.classifier(self.dropout(out.pooler_output))
        loss = self.loss(logits, labels) if labels is not None else None
        return self._return(SequenceClassifierOutput(loss, logits, out.hidden_states, out.attentions), return_dict)


class BertForTokenClassification(BertPreTrainedModel):
    """One label per token (NER): logits [batch, seq, num_labels]; labels -100 (sub-words, specials) are skipped."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: OptTensor = None,
        attention_mask: OptTensor = None,
        token_type_ids: OptTensor = None,
        position_ids: OptTensor = None,
        inputs_embeds: OptTensor = None,
        labels: OptTensor = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> TokenClassifierOutput | tuple:
        out = _encode(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                      output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = _cross_entropy(logits, labels) if labels is not None else None
        return self._return(TokenClassifierOutput(loss, logits, out.hidden_states, out.attentions), return_dict)


class BertForQuestionAnswering(BertPreTrainedModel):
    """Extractive QA: start_logits and end_logits [batch, seq]; loss = mean of the start and end cross-entropies.
    Positions outside the sequence (e.g. an answer cut off by truncation) are clamped to seq and ignored, as in HF."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: OptTensor = None,
        attention_mask: OptTensor = None,
        token_type_ids: OptTensor = None,
        position_ids: OptTensor = None,
        inputs_embeds: OptTensor = None,
        start_positions: OptTensor = None,
        end_positions: OptTensor = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> QuestionAnsweringModelOutput | tuple:
        out = _encode(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                      output_attentions, output_hidden_states,
                      unpad=False if start_positions is not None else None)  # padding enters the loss
        logits = self.qa_outputs(out.last_hidden_state)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            seq_len = start_logits.shape[1]
            losses = [
                F.cross_entropy(lg.float(), pos.reshape(-1).clamp(0, seq_len), ignore_index=seq_len)
                for lg, pos in ((start_logits, start_positions), (end_logits, end_positions))
            ]
            loss = (losses[0] + losses[1]) / 2
        output = QuestionAnsweringModelOutput(loss, start_logits, end_logits, out.hidden_states, out.attentions)
        return self._return(output, return_dict)


class BertForMultipleChoice(BertPreTrainedModel):
    """Inputs [batch, num_choices, seq]; each choice is scored from its pooled [CLS]; logits [batch, num_choices]."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(
        self,
        input_ids: OptTensor = None,
        attention_mask: OptTensor = None,
        token_type_ids: OptTensor = None,
        position_ids: OptTensor = None,
        inputs_embeds: OptTensor = None,
        labels: OptTensor = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MultipleChoiceModelOutput | tuple:
        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None or reference.dim() < 3:
            raise UserError("multiple choice inputs must be [batch, num_choices, seq] (one row per choice)")
        num_choices = reference.shape[1]

        def flat(t: Tensor | None) -> Tensor | None:  # [batch, choices, seq, ...] -> [batch * choices, seq, ...]
            return None if t is None else t.reshape(-1, *t.shape[2:])

        out = _encode(self, flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids),
                      flat(inputs_embeds), output_attentions, output_hidden_states, unpad="auto")
        logits = self.classifier(self.dropout(out.pooler_output)).view(-1, num_choices)
        loss = _cross_entropy(logits, labels) if labels is not None else None
        return self._return(MultipleChoiceModelOutput(loss, logits, out.hidden_states, out.attentions), return_dict)
