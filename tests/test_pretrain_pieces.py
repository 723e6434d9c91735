"""The shared training pieces: optimizer groups and schedule, LAMB, JSONL logging, atomic exact checkpoints."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from bertkit.model import BertConfig, BertForPreTraining
from bertkit.train import checkpoint as ckpt
from bertkit.train.metrics_log import MetricsLogger, read_metrics
from bertkit.train.optim import LAMB, WarmupLinearDecay, build_optimizer, linear_warmup_decay, param_groups


def tiny_model(seed: int = 0) -> BertForPreTraining:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=120, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    return BertForPreTraining(config)


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 120, (4, 12), generator=g)
    labels = torch.where(torch.rand(4, 12, generator=g) < 0.3, ids, torch.full_like(ids, -100))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
            "next_sentence_label": torch.randint(0, 2, (4,), generator=g)}


def train_steps(model, optimizer, scheduler, seeds) -> list[float]:
    model.train()  # dropout on: the RNG state matters for exactness
    losses = []
    for s in seeds:
        loss = model(**batch(s)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


# ------------------------------------------------------------------ optim
def test_no_weight_decay_on_layernorm_and_bias():
    model = tiny_model()
    decay, no_decay = param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    decay_names = {names[id(p)] for p in decay["params"]}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(not n.endswith("bias") and "LayerNorm" not in n for n in decay_names)
    assert all(n.endswith("bias") or "LayerNorm" in n for n in no_decay_names)
    # every trainable parameter once (the tied decoder/embedding matrix is one parameter)
    assert len(decay_names) + len(no_decay_names) == len(list(model.parameters()))
    assert "bert.encoder.layer.0.attention.self.query.weight" in decay_names
    assert "bert.embeddings.LayerNorm.weight" in no_decay_names and "cls.predictions.bias" in no_decay_names


def test_adamw_matches_torch_reference_with_groups():
    model, ref = tiny_model(), tiny_model()
    ours = build_optimizer(model, "adamw", lr=1e-3, weight_decay=0.1)
    no_decay = {n for n, _ in ref.named_parameters() if n.endswith("bias") or "LayerNorm" in n}
    theirs = torch.optim.AdamW([
        {"params": [p for n, p in ref.named_parameters() if n not in no_decay], "weight_decay": 0.1},
        {"params": [p for n, p in ref.named_parameters() if n in no_decay], "weight_decay": 0.0},
    ], lr=1e-3, eps=1e-6)
    for m, opt in ((model, ours), (ref, theirs)):
        torch.manual_seed(1)
        for s in range(3):
            m(**batch(s)).loss.backward()
            opt.step()
            opt.zero_grad()
    for (n, a), (_, b) in zip(model.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(a, b, msg=n)


def test_fused_adamw_on_cpu_steps_like_the_per_tensor_loop():
    fused_model, loop_model = tiny_model(), tiny_model()
    fused = build_optimizer(fused_model, "adamw", lr=1e-3)
    loop = build_optimizer(loop_model, "adamw", lr=1e-3, fused=False)
    assert fused.defaults["fused"] and not loop.defaults["fused"]
    for m, opt in ((fused_model, fused), (loop_model, loop)):
        torch.manual_seed(1)  # the same dropout masks on both sides
        for s in range(3):
            m(**batch(s)).loss.backward()
            opt.step()
            opt.zero_grad()
    for (n, a), (_, b) in zip(fused_model.named_parameters(), loop_model.named_parameters()):
        torch.testing.assert_close(a, b, msg=n)
    split_across_devices = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2, device="meta"))
    with pytest.raises(ValueError, match="all on one CPU or CUDA device"):
        build_optimizer(split_across_devices, "adamw", fused=True)
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(tiny_model(), "sgd")


def test_lamb_update_is_adam_direction_scaled_by_trust_ratio():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(8, 4))
    g = torch.randn(8, 4)
    opt = LAMB([w], lr=0.1, weight_decay=0.01, eps=1e-6)
    w0 = w.detach().clone()
    w.grad = g.clone()
    opt.step()
    # step 1 with bias correction: m_hat = g, v_hat = g^2
    update = g / (g.abs() + 1e-6) + 0.01 * w0
    trust = w0.norm() / update.norm()
    torch.testing.assert_close(w.detach(), w0 - 0.1 * trust * update)
    # trains a tiny model: loss goes down
    model = tiny_model()
    lamb = build_optimizer(model, "lamb", lr=0.1)
    b = batch(0)
    first = model(**b).loss.item()
    for _ in range(20):
        model(**b).loss.backward()
        lamb.step()
        lamb.zero_grad()
    assert model(**b).loss.item() < first - 0.5


def test_warmup_then_linear_decay():
    f = WarmupLinearDecay(warmup_steps=10, total_steps=110)
    ramp = [f(s) for s in range(10)]
    assert all(0 < a < b for a, b in zip(ramp, ramp[1:])) and ramp[-1] < 1
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == 0.0
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = linear_warmup_decay(opt, 0.1, 100)  # fraction of total
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(2.0) and lrs.index(max(lrs)) == 10 and lrs[-1] == pytest.approx(2.0 / 90)
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupLinearDecay(200, 100)


# ------------------------------------------------------------------ logging
def test_metrics_logger_resume_drops_rows_after_the_checkpoint(tmp_path):
    path = tmp_path / "m.jsonl"
    with MetricsLogger(path) as log:
        for step in range(1, 6):
            log.log(step=step, loss=1.0 / step, acc=torch.tensor(0.5), bad=float("nan"))
    with path.open("a") as f:
        f.write('{"step": 6, "loss"')  # a line torn by a crash
    rows = read_metrics(path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["acc"] == 0.5 and rows[0]["bad"] is None and "time" in rows[0]
    with MetricsLogger(path, resume_step=3) as log:
        log.log(step=4, loss=9.0)
    rows = read_metrics(path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and rows[-1]["loss"] == 9.0
    assert all(json.loads(line) for line in path.read_text().splitlines())
    MetricsLogger(path).close()  # a fresh run starts a fresh log
    assert read_metrics(path) == []
    MetricsLogger(tmp_path / "other.jsonl", enabled=False).log(step=1, loss=1.0)
    assert not (tmp_path / "other.jsonl").exists()
    with pytest.raises(FileNotFoundError):
        read_metrics(tmp_path / "missing.jsonl")


# ------------------------------------------------------------------ checkpoint
def make_run(seed=0, name="adamw"):
    model = tiny_model(seed)
    opt = build_optimizer(model, name, lr=1e-3)
    sched = linear_warmup_decay(opt, 2, 20)
    return model, opt, sched


@pytest.mark.parametrize("optimizer_name", ["adamw", "lamb"])
def test_checkpoint_resumes_exactly(tmp_path, optimizer_name):
    model, opt, sched = make_run(name=optimizer_name)
    torch.manual_seed(7)
    random.seed(7)
    np.random.seed(7)
    train_steps(model, opt, sched, range(3))
    ckpt.save_checkpoint(tmp_path, 3, model, optimizer=opt, scheduler=sched, extra={"position": 12})
    expected = train_steps(model, opt, sched, range(3, 6))
    draws = (random.random(), float(np.random.rand()), torch.rand(1).item())

    model2, opt2, sched2 = make_run(seed=99, name=optimizer_name)  # different init: everything must come from disk
    state = ckpt.load_checkpoint(tmp_path, model2, opt2, sched2)
    assert state["step"] == 3 and state["extra"] == {"position": 12}
    resumed = train_steps(model2, opt2, sched2, range(3, 6))
    assert resumed == expected  # bit-exact, dropout included (torch RNG restored)
    assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == draws
    assert sched2.get_last_lr() == sched.get_last_lr()
    for (n, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert torch.equal(a, b), n


def test_checkpoint_folder_is_hf_layout_and_latest_is_atomic(tmp_path, monkeypatch):
    model, opt, sched = make_run()
    first = ckpt.save_checkpoint(tmp_path, 1, model, optimizer=opt, scheduler=sched)
    assert (first / "config.json").is_file() and (first / "model.safetensors").is_file()
    assert BertForPreTraining.from_pretrained(first).config.hidden_size == 16

    # a crash while writing step 2 (after the weights, before the training state)
    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")
    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, 2, model, optimizer=opt, scheduler=sched)
    monkeypatch.undo()
    assert ckpt.latest_checkpoint(tmp_path) == first
    assert (tmp_path / "latest").read_text().strip() == first.name
    assert not (tmp_path / "step-00000002").exists()  # the half-written folder never got its final name
    assert any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())

    # the next save cleans the debris; keep_last prunes old folders
    for step in (2, 3, 4):
        ckpt.save_checkpoint(tmp_path, step, model, optimizer=opt, scheduler=sched, keep_last=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["latest", "step-00000003", "step-00000004"]
    # a lost pointer falls back to the newest complete folder
    (tmp_path / "latest").unlink()
    assert ckpt.latest_checkpoint(tmp_path).name == "step-00000004"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ckpt.load_checkpoint(tmp_path / "nowhere", model)


def test_load_model_weights_rejects_another_shape(tmp_path):
    model, opt, sched = make_run()
    path = ckpt.save_checkpoint(tmp_path, 1, model)
    other = BertForPreTraining(BertConfig(vocab_size=120, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=32, max_position_embeddings=32))
    with pytest.raises(ValueError, match="does not match"):
        ckpt.load_model_weights(other, path)
    # a tensor of another size (here the vocabulary) is named in a one-line ValueError, not torch's RuntimeError
    resized = BertForPreTraining(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                            intermediate_size=32, max_position_embeddings=32))
    with pytest.raises(ValueError, match="does not match the model .*size mismatch for bert.embeddings.word_embeddings"):
        ckpt.load_model_weights(resized, path)

