"""AMP code paths on CPU: half inputs of the spectral ops, autocast IKD steps (CUDA fp16 + GradScaler unproven here)."""

from __future__ import annotations

import pytest
import torch
from ultralytics.cfg import get_cfg
from ultralytics.nn.tasks import DetectionModel

from ikd_yolo import ops
from ikd_yolo.augment.attack import AdversarialAttack
from ikd_yolo.augment.frequency import FrequencyAugment
from ikd_yolo.config import resolve_distill_config
from ikd_yolo.hooks import detect_input_layers
from ikd_yolo.model import TEACHER_FEATS, FeatureDistiller, IKDModel, level_channels
from ikd_yolo.streams import STREAMS_KEY, StreamBatch
from ikd_yolo.teacher import FrozenTeacher, load_teacher


# ---- 3. AMP code paths (CPU autocast; CUDA fp16 + GradScaler unproven here) -----------------------------------------

SPECTRAL_OPS = {  # (x, source of x's precision, generator) -> mixed x
    "mix": lambda x, s, g: ops.spectral_mix(x, s.to(x.dtype), 0.1, 0.6, 0.7),
    "shuffle": lambda x, s, g: ops.spectral_mix_shuffle(x, torch.tensor([1, 2, 0]), torch.tensor([0.0, 0.3, 0.5]),
                                                        torch.tensor([0.3, 1.0, 1.5]), 1.0, "amplitude"),
    "noise": lambda x, s, g: ops.spectral_mix_noise(x, 0.08, 0.3, 1.415, 0.8, generator=g),
}


@pytest.fixture(params=["reference", "auto"])
def op_backend(request):
    ops.set_backend(request.param)
    yield ops.backend("cpu")
    ops.set_backend("auto")


@pytest.mark.parametrize("name", list(SPECTRAL_OPS))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_spectral_ops_compute_half_inputs_in_fp32(name, dtype, op_backend):
    x, source = torch.rand(2, 3, 3, 20, 17, generator=torch.Generator().manual_seed(0)).to(dtype)
    out = SPECTRAL_OPS[name](x, source, torch.Generator().manual_seed(1))
    in_fp32 = SPECTRAL_OPS[name](x.float(), source, torch.Generator().manual_seed(1))
    assert out.dtype == dtype and torch.equal(out, in_fp32.to(dtype))  # fp32 math, one rounding at the end
    with torch.autocast("cpu", dtype=dtype):  # autocast must not lower the FFT path either
        auto = SPECTRAL_OPS[name](x.float(), source, torch.Generator().manual_seed(1))
    assert auto.dtype == torch.float32 and torch.equal(auto, in_fp32)


@pytest.fixture(scope="module")
def ikd_parts(teacher_pt):
    """The trained teacher, frozen, and a preprocessed 3-image batch (the last image has no boxes)."""
    teacher = FrozenTeacher(load_teacher(teacher_pt, nc=8))
    teacher.model.args = get_cfg()
    batch = {
        "img": torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
        "cls": torch.tensor([[1.0], [3.0], [5.0]]),
        "bboxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.5, 0.6], [0.5, 0.5, 0.1, 0.1]]),
        "ori_shape": [(64, 64)] * 3, "resized_shape": [(64, 64)] * 3, "ratio_pad": [((1.0, 1.0), (0.0, 0.0))] * 3,
    }
    return teacher, batch


@pytest.mark.parametrize("kd_loss", ["fgd", "mgd", "cwd", "mse"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_ikd_step_under_autocast_gives_finite_fp32_terms_and_grads(kd_loss, dtype, ikd_parts):
    teacher, batch = ikd_parts
    cfg = resolve_distill_config({"distill": "ikd-fgd-full", "kd_loss": kd_loss, "adv_steps": 2, "freq_p": 1.0})
    student = DetectionModel("yolo11n.yaml", nc=8, verbose=False)
    student.args = get_cfg()
    distiller = FeatureDistiller(level_channels(student, detect_input_layers(student)),
                                 level_channels(teacher.model, teacher.recorder.layers), cfg)
    model = IKDModel(student, distiller).train()
    criterion = teacher.model.init_criterion()
    with torch.autocast("cpu", dtype=dtype):  # as Ultralytics runs preprocess_batch and the forward
        b = FrequencyAugment.from_config(cfg)(dict(batch), generator=torch.Generator().manual_seed(0))
        b[TEACHER_FEATS] = teacher.features(b["img"])
        attack = AdversarialAttack.from_config(cfg)
        x_adv = attack(teacher.model, criterion, b, generator=torch.Generator().manual_seed(0))
        b[STREAMS_KEY] = {"adv": StreamBatch(x_adv, teacher.features(x_adv), None, None, None)}
        loss, items = model(b)
    assert b["img"].dtype == torch.float32 and x_adv.dtype == torch.float32
    assert torch.isfinite(loss).all() and loss.dtype == torch.float32
    assert items[f"{kd_loss}_loss"].dtype == torch.float32 and items[f"{kd_loss}_loss"] > 0 and items["adv_loss"] > 0
    loss.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in distiller.parameters())
