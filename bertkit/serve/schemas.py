"""The JSON bodies of the server's endpoints (pydantic models: they validate and make the OpenAPI schema).

Every text endpoint takes `inputs`: one text or a list of texts (HuggingFace's Inference API name),
and answers `{"results": [...]}` with one result per input, in order. Unknown fields are refused,
so a typo such as `input` gets a clear error instead of being ignored.

Every string of every body passes `replace_surrogates`: the one rule for unpaired UTF-16 surrogates at
the API edge (see its docstring). Bounds that are server flags (`--max-top-k`, ...) are checked by the
server, not here, so that the error can name the flag.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from bertkit.tokenizer.normalize import replace_surrogates

Text = Annotated[StrictStr, AfterValidator(replace_surrogates)]
Texts = Union[Text, list[Text]]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextsRequest(Request):
    inputs: Texts = Field(description="a text or a list of texts")
    truncate: Optional[StrictBool] = Field(
        None, description="cut texts longer than the limit instead of refusing them (default: the server's --truncate)"
    )

    def texts(self) -> list[str]:
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)


# text-embeddings-inference cuts at the end only here; its "Left" is refused by the schema (422)
TruncationDirection = Optional[Literal["Right", "right"]]


class EitherApi(Request):
    """A body that bertkit and text-embeddings-inference (TEI) both define on one path (/embed, /tokenize).

    A TEI-only field makes it TEI's (and TEI's answer shape), a bertkit-only field bertkit's; a body with neither
    gets the server's default (`--tei`: TEI's, else bertkit's). Both at once is refused: no answer fits it."""

    TEI_ONLY: ClassVar[tuple[str, ...]] = ()
    BERTKIT_ONLY: ClassVar[tuple[str, ...]] = ()
    prompt_name: Optional[Text] = Field(None, description="TEI's: a prompt of the folder's sentence-transformers "
                                                          "settings, put before each text")

    @model_validator(mode="after")
    def one_api(self) -> "EitherApi":
        tei = [name for name in self.TEI_ONLY if name in self.model_fields_set]
        own = [name for name in self.BERTKIT_ONLY if name in self.model_fields_set]
        if tei and own:
            raise ValueError(f"{', '.join(own)} is bertkit's and {', '.join(tei)} text-embeddings-inference's: "
                             "send the fields of one API")
        return self

    def answers_tei(self, default: bool) -> bool:
        fields = self.model_fields_set
        if any(name in fields for name in self.TEI_ONLY):
            return True
        return default and not any(name in fields for name in self.BERTKIT_ONLY)


class TokenizeRequest(EitherApi):
    TEI_ONLY = ("add_special_tokens", "prompt_name")
    BERTKIT_ONLY = ("text_pair",)
    inputs: Texts = Field(description="a text or a list of texts")
    text_pair: Optional[Texts] = Field(None, description="second text(s): one per text in inputs")
    add_special_tokens: Optional[StrictBool] = Field(None, description="TEI's: keep [CLS] and [SEP] (default true)")
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"inputs": "He got bit by Python."}]})


class EmbedRequest(TextsRequest, EitherApi):
    TEI_ONLY = ("truncation_direction", "prompt_name")
    BERTKIT_ONLY = ("pooling",)
    truncation_direction: TruncationDirection = Field(None, description="TEI's: which end to cut (Right only)")
    pooling: Optional[Literal["mean", "cls", "max", "pooler"]] = Field(
        None, description="how token vectors become one sentence vector (default: the model folder's setting, else mean)"
    )
    normalize: Optional[StrictBool] = Field(None, description="L2-normalize the vectors (default: the model folder's setting)")
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"inputs": ["I love Paris.", "Paris is lovely."]}]})


class FillMaskRequest(TextsRequest):
    top_k: int = Field(5, ge=1, strict=True, description="predictions per [MASK] (at most the server's --max-top-k, 100)")
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"inputs": "Paris is the [MASK] of France.", "top_k": 3}]})


class SentencePair(Request):
    text: Text
    text_pair: Text


class NextSentenceRequest(Request):
    inputs: Union[SentencePair, list[SentencePair]] = Field(description="a sentence pair or a list of pairs")
    truncate: Optional[StrictBool] = None
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"inputs": {"text": "I am going outside.", "text_pair": "I will be back after 6."}}]
    })

    def pairs(self) -> list[SentencePair]:
        return [self.inputs] if isinstance(self.inputs, SentencePair) else list(self.inputs)


class ClassifyRequest(TextsRequest):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"inputs": "A gripping, funny film."}]})


class NerRequest(TextsRequest):
    aggregation_strategy: Literal["none", "simple", "first", "average", "max"] = Field(
        "simple", description="how word pieces are merged into entities (HuggingFace's strategies)"
    )
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"inputs": "Elon Musk founded Tesla in California."}]})


class Question(Request):
    question: Text
    context: Text


class QaRequest(Request):
    inputs: Union[Question, list[Question]] = Field(description="a question with its context, or a list of them")
    top_k: int = Field(1, ge=1, strict=True, description="answers per question, best first; more than 1 gives a list "
                                                          "(at most the server's --max-top-k, 100)")
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"inputs": {"question": "Where is the Eiffel Tower?", "context": "The Eiffel Tower is in Paris."}}]
    })

    def questions(self) -> list[Question]:
        return [self.inputs] if isinstance(self.inputs, Question) else list(self.inputs)


class AttentionRequest(Request):
    inputs: Text = Field(description="one text")
    text_pair: Optional[Text] = Field(None, description="an optional second sentence")
    layer: Optional[int] = Field(None, strict=True, description="only this layer (default: every layer)")
    truncate: Optional[StrictBool] = None
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"inputs": "He got bit by Python."}]})


# -- text-embeddings-inference's own routes (bertkit.serve.compat) -------------------------------------------
class EmbedAllRequest(Request):
    inputs: Texts = Field(description="a text or a list of texts")
    truncate: Optional[StrictBool] = None
    truncation_direction: TruncationDirection = None
    prompt_name: Optional[Text] = None


class PredictRequest(Request):
    inputs: Union[Text, list[Text], list[list[Text]]] = Field(
        description="a text, a [text, text_pair] pair, or a list of texts and pairs (a list of exactly two texts is "
                    "one pair, as in text-embeddings-inference)")
    truncate: Optional[StrictBool] = None
    truncation_direction: TruncationDirection = None
    raw_scores: StrictBool = Field(False, description="the logits instead of softmax/sigmoid scores")


class RerankRequest(Request):
    query: Text
    texts: list[Text]
    truncate: Optional[StrictBool] = None
    truncation_direction: TruncationDirection = None
    raw_scores: StrictBool = False
    return_text: StrictBool = False


class DecodeRequest(Request):
    ids: Union[list[StrictInt], list[list[StrictInt]]] = Field(description="token ids, or a list of id lists")
    skip_special_tokens: StrictBool = True


# -- OpenAI's embeddings API ------------------------------------------------------------------------------------
class OpenAIEmbeddingsRequest(Request):
    model_config = ConfigDict(extra="ignore")  # OpenAI's clients add fields of their own (user, ...)
    input: Texts = Field(description="a text or a list of texts (token-id inputs are not taken)")
    model: StrictStr = Field(description="echoed back: this server serves one model")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Optional[StrictInt] = Field(None, description="refused unless it is the model's size")


class Results(BaseModel):
    results: list[Any] = Field(description="one result per input, in the order of the inputs")


class ErrorBody(BaseModel):
    code: str = Field(description="a stable name: malformed_json, invalid_request, empty_input, too_many_texts, "
                                   "text_too_long, too_many_tokens, body_too_large, response_too_large, too_many_masks, "
                                   "top_k_too_large, no_mask, invalid_input, task_not_supported, not_found, "
                                   "method_not_allowed, unsupported_media_type, not_ready, overloaded, queue_timeout, "
                                   "deadline_exceeded, internal_error (docs/serving.md)")
    message: str = Field(description="what was wrong and what to do")


class ErrorResponse(BaseModel):
    error: ErrorBody
