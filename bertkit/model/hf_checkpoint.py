"""HuggingFace checkpoints in and out.

Reads a folder holding config.json and the weights as model.safetensors, pytorch_model.bin, or shards listed in
model.safetensors.index.json / pytorch_model.bin.index.json; keys with or without the `bert.` prefix; legacy
LayerNorm `gamma`/`beta` names. Loading into another head logs, as HF does, which checkpoint weights were not used
and which model weights are newly initialised. Writes config.json + model.safetensors (sharded on request) that
`transformers` loads as its own.
"""
from __future__ import annotations

import difflib
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bertkit.errors import MissingFileError, UserError
from bertkit.hub import resolve_folder
from bertkit.utils.logging import get_logger, warn_ignored

from .config import BertConfig
from .size import check_model_size

logger = get_logger()  # the "bertkit" logger: WARNING and up to stderr by default, utils.logging sets verbosity

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFE_WEIGHTS, SAFE_INDEX, TORCH_WEIGHTS, TORCH_INDEX)  # in order of preference
PREFIX = "bert."
BASE_MODULES = ("embeddings.", "encoder.", "pooler.")

# from_pretrained keywords that are about loading, not config fields
_LOADER_KEYS = {"config", "torch_dtype", "dtype", "device", "ignore_mismatched_sizes", "local_files_only",
                "output_loading_info", "state_dict", "cache_dir", "revision", "token", "add_pooling_layer",
                "low_cpu_mem_usage", "trust_remote_code", "use_safetensors", "force_download", "device_map",
                "attn_implementation", "subfolder"}
ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")  # bertkit runs SDPA, and gives the weights (eager's) when asked
LABEL_KEYS = ("num_labels", "id2label", "label2id")


# --- reading weights --------------------------------------------------------------------------------------
def load_pickle(path: Path, what: str = "file") -> Any:
    """`torch.load` that never runs code from the file (weights_only=True), with one-line errors naming it.

    A pickle that asks for a function or class (`os.system`, `eval`...) is said to be one that would run code:
    torch's own message would suggest weights_only=False, which is exactly what must not be done with such a file,
    and a raw `pickle.dump` fails in torch's reader with "Unsupported operand", which reads like a damaged file.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - zip reader, unpickler and storage code raise many kinds
        text = str(err)
        called = re.search(r"GLOBAL ([\w.]+)", text)
        if isinstance(err, pickle.UnpicklingError) and (called or "GLOBAL" in text):
            raise UserError(pickle_code_message(path, what, called.group(1) if called else None)) from None
        if isinstance(err, pickle.UnpicklingError) and (calls := pickle_calls(path)):
            raise UserError(pickle_code_message(path, what, calls[0])) from None
        first = re.split(r"(?<=\.)\s", text.strip().splitlines()[0])[0][:160] if text.strip() else "no detail"
        raise UserError(f"could not read {what} {path} ({type(err).__name__}: {first}); the file is truncated "
                         "or corrupt: copy or download it again") from None


def pickle_calls(path: Path, limit: int = 1 << 30) -> list[str]:
    """The functions or classes a plain pickle file would import and call when loaded (nothing is run: the
    opcodes are only read); [] when it is no plain pickle or calls nothing."""
    import pickletools

    if path.stat().st_size > limit:
        return []
    calls, strings = [], []
    try:
        with open(path, "rb") as file:
            for opcode, arg, _ in pickletools.genops(file):
                if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                    strings = [*strings[-1:], str(arg)]
                elif opcode.name in ("GLOBAL", "INST"):
                    calls.append(str(arg).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL":
                    calls.append(".".join(strings) if len(strings) == 2 else "an imported name")
                elif opcode.name in ("REDUCE", "OBJ", "NEWOBJ", "NEWOBJ_EX") and not calls:
                    calls.append("a call")
    except Exception:  # noqa: BLE001 - not a pickle, or a truncated one: pickletools raises many kinds
        return []
    return calls


def pickle_code_message(path: Path, what: str, called: str | None) -> str:
    """What to say of a pickle that would run code when loaded (and was not loaded)."""
    name = f" ({called})" if called else ""
    message = f"{what} {path} is a pickle that would run code{name} when loaded; bertkit refused it and ran nothing"
    if what != "weights file":
        return message + ": restore the file from a source you trust"
    return message + (
        ". If, and only if, you trust where it came from, convert it once to safetensors (which holds tensors only, "
        "never code) and delete the pickle: "
        f"python -c \"import torch; from safetensors.torch import save_file; s = torch.load('{path}', "
        f"weights_only=False); save_file({{k: v.contiguous().clone() for k, v in s.items()}}, "
        f"'{path.with_name(SAFE_WEIGHTS)}')\"")


def _read_file(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise MissingFileError(f"weights file {path} is missing: the folder is incomplete, copy it again")
    if path.suffix != ".safetensors":
        return load_pickle(path, "weights file")
    try:
        from safetensors.torch import load_file

        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises many kinds on a bad file
        raise UserError(f"could not read weights file {path} ({type(err).__name__}: {err}); the file is truncated "
                         "or corrupt: copy or download it again") from err


def _shard_path(folder: Path, index: Path, shard: Any) -> Path:
    """A shard named by an index, refused unless it is a plain file name inside the folder: an index is data
    from wherever the folder came from, and must not make us read `../../secret` or `/etc/...`."""
    if not isinstance(shard, str) or not shard:
        raise UserError(f"{index} names a shard {shard!r} that is not a file name; restore the index")
    # judged by the name, not by resolving links: the Hugging Face cache keeps its files as links to ../blobs/
    if Path(shard).is_absolute() or ".." in Path(shard).parts:
        raise UserError(f"{index} names shard {shard!r}, which is outside the model folder {folder}; shards must be "
                         "files inside that folder: restore the index")
    return folder / shard


def read_state_dict(folder: Path) -> tuple[dict[str, Tensor], Path]:
    """All tensors of the folder's checkpoint (single file or shards) and the file they came from."""
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return _read_file(path), path
        try:
            weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
            raise UserError(f"{path} is not a valid shard index ({err}); restore the file") from err
        if not isinstance(weight_map, dict):
            raise UserError(f"{path} is not a valid shard index (weight_map is not an object); restore the file")
        shards = sorted({_shard_path(folder, path, shard) for shard in weight_map.values()})
        state: dict[str, Tensor] = {}
        for shard in shards:  # every name checked before any file is read
            state.update(_read_file(shard))
        missing = sorted(set(weight_map) - set(state))
        if missing:
            raise UserError(f"{path} lists tensors that no shard holds: {missing[:5]}; the shards are incomplete")
        return state, path
    found = sorted(p.name for p in folder.iterdir())
    raise MissingFileError(f"no weights in {folder} (looked for {', '.join(WEIGHT_FILES)}; found {found}). "
                            "Save the model with save_pretrained or copy its weights file into the folder.")


def normalize_key(key: str) -> str:
    """Legacy names -> today's: LayerNorm.gamma/beta -> weight/bias."""
    return re.sub(r"\.beta$", ".bias", re.sub(r"\.gamma$", ".weight", key))


def tied_aliases(model: nn.Module) -> set[str]:
    """State-dict keys that are another key's tensor (the MLM decoder's weight and bias): saved and loaded once."""
    seen: set[int] = set()
    aliases = set()
    for key, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            aliases.add(key)
        seen.add(id(tensor))
    return aliases


def rename_keys(state: dict[str, Tensor], model_has_prefix: bool) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Checkpoint names -> this model's names, and back (reports use the checkpoint's own names, as HF's do).
    Checkpoints of BertModel have no `bert.` prefix, those of heads do; old HF saved position_ids buffers."""
    state_has_prefix = any(k.startswith(PREFIX) for k in state)
    renamed, original = {}, {}
    for key, tensor in state.items():
        if key.endswith("position_ids"):
            continue
        new = normalize_key(key)
        if model_has_prefix and not state_has_prefix and new.startswith(BASE_MODULES):
            new = PREFIX + new
        elif not model_has_prefix and new.startswith(PREFIX):
            new = new[len(PREFIX):]
        renamed[new], original[new] = tensor, key
    return renamed, original


def _layer_count(keys: list[str]) -> int:
    layers = {int(m.group(1)) for k in keys if (m := re.search(r"encoder\.layer\.(\d+)\.", k))}
    return max(layers) + 1 if layers else 0


def _check_fits(state: dict[str, Tensor], config: BertConfig, source: Path) -> None:
    """Errors that name the real cause when config.json and the weights disagree."""
    for key, tensor in state.items():
        if key.endswith("embeddings.word_embeddings.weight") and tensor.shape[0] != config.vocab_size:
            raise UserError(
                f"{source}: {key} has {tensor.shape[0]} rows (a vocabulary of {tensor.shape[0]}) but the config says "
                f"vocab_size={config.vocab_size}; set vocab_size to {tensor.shape[0]} in config.json (or do not "
                "override it), and use the tokenizer that was saved with these weights"
            )
    layers = _layer_count(list(state))
    if layers and layers != config.num_hidden_layers:
        raise UserError(
            f"{source} holds weights for {layers} encoder layers but the config says num_hidden_layers="
            f"{config.num_hidden_layers}; the config does not fit these weights: fix config.json"
        )


def _device_of(device_map: Any, device: Any) -> Any:
    """The one device a model goes to, from HF's device_map ("auto", "cpu", a device or index, or a dict that
    puts every module on the same device) or device=. bertkit runs a model whole on one device."""
    if device_map is None:
        return device
    if isinstance(device_map, dict):
        places = set(map(str, device_map.values()))
        if len(places) != 1:
            raise UserError(f"device_map spreads the model over {sorted(places)}; bertkit runs a model on one device: "
                            "pass device_map='auto' or one device")
        device_map = device_map[next(iter(device_map))]
    if device_map == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return f"cuda:{device_map}" if isinstance(device_map, int) else device_map


def _parse_dtype(value: Any, config: BertConfig, state: dict[str, Tensor]) -> torch.dtype | None:
    if value is None:
        return None
    if value == "auto":
        value = getattr(config, "torch_dtype", None) or next(
            (t.dtype for t in state.values() if t.is_floating_point()), torch.float32)
    if isinstance(value, str):
        value = getattr(torch, value.replace("torch.", ""), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise UserError(f"torch_dtype must be a floating torch dtype or 'auto' (e.g. torch.bfloat16), got {value!r}")
    return value


# --- loading ----------------------------------------------------------------------------------------------
def load_pretrained(cls: type, name_or_path: str | os.PathLike, **kwargs: Any):
    """Build `cls` from a folder's config.json (+ overrides) and load its weights; see BertPreTrainedModel.from_pretrained."""
    loader = {k: kwargs.pop(k) for k in list(kwargs) if k in _LOADER_KEYS}
    no_effect = {k for k in ("trust_remote_code", "use_safetensors", "low_cpu_mem_usage", "force_download") if loader.get(k)}
    if no_effect:
        warn_ignored(f"{cls.__name__}.from_pretrained", no_effect,
                     "bertkit runs only its own code, prefers safetensors and loads weights without a random init anyway")
    hub_kwargs = {k: loader[k] for k in ("cache_dir", "revision", "token") if loader.get(k) is not None}
    if Path(str(name_or_path)).expanduser().is_file():
        raise UserError(f"{name_or_path} is a file; from_pretrained takes the folder that holds config.json and the "
                        "weights")
    folder = resolve_folder(name_or_path, "model", loader.get("local_files_only", False), **hub_kwargs)
    if loader.get("subfolder"):
        folder = folder / loader["subfolder"]
        if not (folder / "config.json").is_file():
            raise MissingFileError(f"subfolder={loader['subfolder']!r}: no config.json in {str(folder)!r}")
    device = _device_of(loader.get("device_map"), loader.get("device"))
    attention = loader.get("attn_implementation")
    if attention is not None and attention not in ATTENTION_IMPLEMENTATIONS:
        raise UserError(f"attn_implementation={attention!r} is not available in bertkit; choose one of "
                        f"{', '.join(ATTENTION_IMPLEMENTATIONS)} (sdpa is what bertkit runs; eager's attention weights "
                        "come with output_attentions=True either way)")

    config = loader.get("config")
    if config is None:
        config = BertConfig.from_pretrained(folder)
    elif not isinstance(config, BertConfig):
        raise UserError(f"config= must be a BertConfig, got {type(config).__name__}")
    else:
        config = BertConfig.from_dict(config.to_dict())  # do not mutate the caller's object
    unknown = sorted(k for k in kwargs if k not in LABEL_KEYS and not hasattr(config, k))
    if unknown:
        hints = [f"{name!r}" + (f" (did you mean {close[0]}?)" if (close := difflib.get_close_matches(
            name, [*config.to_dict(), *LABEL_KEYS, *_LOADER_KEYS], 1)) else "") for name in unknown]
        raise UserError(f"{cls.__name__}.from_pretrained: unknown config field {', '.join(hints)}, and neither a loader "
                        f"keyword ({', '.join(sorted(_LOADER_KEYS))}) nor a config field "
                        f"({', '.join(sorted(config.to_dict()))})")
    config.update(kwargs)  # num_labels=..., id2label=..., output_hidden_states=...
    if attention is not None:
        config._attn_implementation = attention

    if loader.get("state_dict") is not None:
        state, source = dict(loader["state_dict"]), folder
    else:
        state, source = read_state_dict(folder)
    _check_fits({normalize_key(k): v for k, v in state.items()}, config, source)
    # a state_dict= passed in may hold part of the weights on purpose: only the folder's file must fill the model
    weights = None if loader.get("state_dict") is not None else sum(t.numel() for t in state.values())
    check_model_size(config, weights_parameters=weights, source=folder / "config.json")

    model_kwargs = {"add_pooling_layer": loader["add_pooling_layer"]} if "add_pooling_layer" in loader else {}
    with torch.device("meta"):  # no memory and no random init for weights the checkpoint is about to fill
        model = cls(config, **model_kwargs)
    model.to_empty(device="cpu")
    model.tie_weights()  # to_empty gives every module its own new tensors: tie the decoder again
    state, original_names = rename_keys(state, model_has_prefix=hasattr(model, PREFIX[:-1]))
    info = load_state(model, state, str(name_or_path), loader.get("ignore_mismatched_sizes", False), original_names)
    model.eval()  # like HF: dropout off until the caller trains

    dtype = _parse_dtype(loader.get("torch_dtype", loader.get("dtype")), config, state)
    if dtype is not None:
        model.to(dtype)
    if device is not None:
        model.to(device)
    model.name_or_path = str(name_or_path)
    return (model, info) if loader.get("output_loading_info") else model


@torch.no_grad()
def init_missing(model: nn.Module, missing: list[str]) -> None:
    """HF's init for the weights a checkpoint does not provide (a new head, say); the rest is loaded over it."""
    modules = dict(model.named_modules())
    done: set[str] = set()
    for key in missing:
        owner, _, name = key.rpartition(".")
        module = modules[owner]
        if isinstance(module, (nn.Linear, nn.Embedding, nn.LayerNorm)):
            if owner not in done:  # once per module (weight and bias together), so the seeded draws are HF's
                model._init_weights(module)
                done.add(owner)
        else:  # cls.predictions.bias, the MLM output bias, starts at zero
            getattr(module, name).zero_()


def load_state(model: nn.Module, state: dict[str, Tensor], source: Path | str, ignore_mismatched_sizes: bool = False,
               original_names: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Copy matching tensors into `model`; log (as HF does) what was unused and what is newly initialised."""
    aliases = tied_aliases(model)
    expected = {k: v for k, v in model.state_dict().items() if k not in aliases}
    to_load, mismatched = {}, []
    for key, tensor in state.items():
        if key not in expected:
            continue
        if tensor.shape != expected[key].shape:
            if not ignore_mismatched_sizes:
                raise UserError(
                    f"{source}: {key} has shape {list(tensor.shape)} but the model built from the config expects "
                    f"{list(expected[key].shape)}; the config does not fit these weights (check hidden_size, "
                    "intermediate_size, num_labels ... in config.json), or pass ignore_mismatched_sizes=True to "
                    "re-initialise such weights (e.g. a classifier loaded with a different num_labels)"
                )
            mismatched.append(f"{key}: checkpoint {list(tensor.shape)} vs model {list(expected[key].shape)}")
            continue
        to_load[key] = tensor.to(expected[key].dtype)
    missing = sorted(k for k in expected if k not in to_load)
    init_missing(model, missing)
    # assign: the model takes the loaded tensors as they are instead of copying them (HF does the same);
    # that replaces the parameter objects, so the MLM decoder is tied again afterwards
    model.load_state_dict(to_load, strict=False, assign=True)
    if hasattr(model, "tie_weights"):
        model.tie_weights()

    name = type(model).__name__
    original_names = original_names or {}
    unexpected = sorted(original_names.get(k, k) for k in state if k not in expected and k not in aliases)
    if unexpected:
        logger.warning(f"Some weights of the model checkpoint at {source} were not used when initializing {name}: "
                       f"{unexpected}")
    if missing:
        logger.warning(f"Some weights of {name} were not initialized from the model checkpoint at {source} and are "
                       f"newly initialized: {missing}\nYou should probably TRAIN this model on a down-stream task to "
                       "be able to use it for predictions and inference.")
    if mismatched:
        logger.warning(f"Some weights of {name} were re-initialized because their shapes did not match the "
                       f"checkpoint at {source}: {mismatched}")
    return {"missing_keys": missing, "unexpected_keys": unexpected, "mismatched_keys": mismatched}


def missing_head_weights(loading_info: dict[str, list[str]]) -> list[str]:
    """The head weights a checkpoint lacked (the encoder's are `bert.*`), i.e. those `from_pretrained` made up."""
    return [key for key in loading_info["missing_keys"] if not key.startswith("bert.")]


# --- saving -----------------------------------------------------------------------------------------------
def _parse_size(size: int | str) -> int:
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)I?B?\s*", str(size).upper())
    if not match:
        raise UserError(f"max_shard_size={size!r}: give bytes as an int or a string like '500MB' or '2GB'")
    return int(float(match.group(1)) * {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}[match.group(2)])


def _save_file(tensors: dict[str, Tensor], path: Path) -> None:
    """Write via a temporary file and rename, so an interrupted save never leaves a truncated checkpoint."""
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})  # transformers requires format=pt
    os.replace(tmp, path)


def save_pretrained(model: nn.Module, folder: str | os.PathLike, max_shard_size: int | str | None = None) -> None:
    folder = Path(folder)
    if folder.is_file():
        raise UserError(f"{folder} is a file; save_pretrained needs a folder path")
    folder.mkdir(parents=True, exist_ok=True)
    aliases = tied_aliases(model)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k not in aliases}

    for stale in [*folder.glob("model-*-of-*.safetensors"), folder / SAFE_WEIGHTS, folder / SAFE_INDEX]:
        stale.unlink(missing_ok=True)  # a previous save with other sharding would otherwise shadow this one
    limit = _parse_size(max_shard_size) if max_shard_size is not None else None
    if limit is None:
        _save_file(tensors, folder / SAFE_WEIGHTS)
    else:
        shards: list[dict[str, Tensor]] = [{}]
        size = 0
        for key, tensor in tensors.items():
            nbytes = tensor.numel() * tensor.element_size()
            if shards[-1] and size + nbytes > limit:
                shards.append({})
                size = 0
            shards[-1][key] = tensor
            size += nbytes
        weight_map = {}
        for i, shard in enumerate(shards, start=1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            _save_file(shard, folder / name)
            weight_map.update({key: name for key in shard})
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (folder / SAFE_INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")

    config: BertConfig = model.config
    config.architectures = [type(model).__name__]
    config.torch_dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    config.save_pretrained(folder)
