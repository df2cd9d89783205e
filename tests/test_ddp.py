"""Multi-GPU readiness: Ultralytics' own DDP launch rebuilds the IKD trainer in every rank (2 CPU ranks, gloo)."""

from __future__ import annotations

import json
import os
import textwrap
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn
from ultralytics.nn.tasks import DetectionModel, load_checkpoint
from ultralytics.utils import RANK
from ultralytics.utils.torch_utils import unwrap_model

from helpers import digest, train_kwargs
from ikd_yolo import IKDTrainer
from ikd_yolo.config import DISTILL_KEYS


# ---- 2. multi-GPU readiness through Ultralytics' own DDP launch ------------------------------------------------------
# The parent trainer takes Ultralytics' DDP branch (generate_ddp_command -> `python -m torch.distributed.run
# --nproc_per_node 2 <temp script>`; each rank unpickles {trainer class, vars(args), model, callbacks} and rebuilds the
# trainer). This machine has no GPU, so a sitecustomize on the ranks' PYTHONPATH changes only the device plumbing:
# gloo instead of NCCL, CPU modules (DDP takes no device_ids there), and the final validation on the CPU.
# Unproven here: NCCL, CUDA device placement per rank, and timing on real GPUs.

CPU_DDP_PATCH = textwrap.dedent('''
    """Let Ultralytics' DDP workers run on CPU with gloo (test machine without GPUs)."""
    import os

    if os.environ.get("LOCAL_RANK") is not None:
        import torch
        import torch.distributed as dist
        import ultralytics.engine.validator as validator
        from torch import nn
        from ultralytics.engine.trainer import BaseTrainer
        from ultralytics.utils import RANK

        _init, _AutoBackend = BaseTrainer.__init__, validator.AutoBackend

        def __init__(self, *args, **kwargs):
            _init(self, *args, **kwargs)
            self.world_size = int(os.environ["WORLD_SIZE"])  # device=cpu counts 0 devices

        def _setup_ddp(self):
            dist.init_process_group("gloo", rank=RANK, world_size=self.world_size)

        class CPUDistributedDataParallel(nn.parallel.DistributedDataParallel):
            def __init__(self, module, device_ids=None, **kwargs):
                super().__init__(module, device_ids=None, **kwargs)

        class NoCuda:
            @staticmethod
            def current_device():
                return 0

        BaseTrainer.__init__, BaseTrainer._setup_ddp = __init__, _setup_ddp
        nn.parallel.DistributedDataParallel = CPUDistributedDataParallel
        validator.get_torch_device_backend = lambda device_type: NoCuda
        validator.AutoBackend = lambda *a, device=None, **k: _AutoBackend(*a, device=torch.device("cpu"), **k)
''')


def ddp_record(trainer, event: str):
    """Callback run in every rank: what the rebuilt trainer holds at `event`, written to save_dir/rank<RANK>.json."""
    path = Path(trainer.save_dir) / f"rank{RANK}.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    inner = unwrap_model(trainer.model)
    params = dict(trainer.model.named_parameters())
    teacher = {id(p) for p in trainer.teacher.parameters()}
    out[event] = {
        "distill": trainer.distill,
        "args_keys": sorted(k for k in vars(trainer.args) if k in DISTILL_KEYS),
        "ddp": isinstance(trainer.model, nn.parallel.DistributedDataParallel),
        "find_unused_parameters": getattr(trainer.model, "find_unused_parameters", None),
        "inner": type(inner).__name__,
        "param_prefixes": sorted({".".join(n.split(".")[:2]) for n in params}),
        "teacher_in_ddp": any(id(p) in teacher for p in trainer.model.parameters()),
        "distiller": digest(dict(inner.distiller.named_parameters())),
        "student": digest(dict(inner.student.named_parameters())),
        "losses": {k: float(v) for k, v in (trainer.tloss or {}).items()},
        "measured": trainer.auto_weight_report is not None,
    }
    path.write_text(json.dumps(out))


def ddp_on_model_save(trainer):
    """Rank 0: the distiller keys a DDP run writes into last.pt (resume in one process must read them)."""
    state = torch.load(trainer.last, weights_only=False)["ema"].ikd_state
    (Path(trainer.save_dir) / "saved_keys.json").write_text(json.dumps(sorted(state["distiller"])))


def test_ddp_launch_rebuilds_trainer_from_args_and_reduces_distillation_grads(tmp_path, monkeypatch, synthetic_data,
                                                                              teacher_pt):
    pytest.importorskip("cloudpickle", minversion="3.1.1", reason="Ultralytics' DDP launcher needs cloudpickle>=3.1.1")
    patch_dir = tmp_path / "cpu_ddp"
    patch_dir.mkdir()
    (patch_dir / "sitecustomize.py").write_text(CPU_DDP_PATCH)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(patch_dir), os.environ.get("PYTHONPATH", "")]))

    trainer = IKDTrainer(overrides=dict(model="yolo11n.yaml", teacher=str(teacher_pt), data=str(synthetic_data),
                                        distill="ikd-mgd", mgd_ratio=0.5, adv_steps=1, adv_mode="cached",
                                        **train_kwargs(tmp_path, "ddp", val=False)))
    trainer.model = trainer.get_model(cfg="yolo11n.yaml")  # what YOLO(...).train() does before trainer.train()
    trainer.add_callback("on_train_start", partial(ddp_record, event="start"))
    trainer.add_callback("on_train_epoch_end", partial(ddp_record, event="epoch_end"))
    trainer.add_callback("on_model_save", ddp_on_model_save)
    trainer.world_size, trainer.ddp = 2, True  # what device=0,1 sets up in the launching process
    monkeypatch.setenv("IKD_YOLO_CACHE", str(tmp_path / "cache"))
    trainer.train()  # Ultralytics' DDP branch: temp entry file, torch.distributed.run, one rebuilt trainer per rank

    run = tmp_path / "ddp"
    ranks = [json.loads((run / f"rank{r}.json").read_text()) for r in (0, 1)]
    # adv_mode=cached: both ranks built the cache, each its share (tests/test_cache_ddp.py), before training on it
    assert len(list((tmp_path / "cache" / "adv").rglob("*.adv"))) == 16
    auto = [k for k, v in trainer.distill.items() if v == "auto"]
    assert "mgd_alpha" in auto and "adv_weight" in auto
    # weights=auto: measured once, on rank 0, and rank 1 trains with rank 0's numbers
    assert [rank["start"]["measured"] for rank in ranks] == [True, False]
    assert all(isinstance(ranks[0]["start"]["distill"][k], float) and ranks[0]["start"]["distill"][k] > 0
               for k in ("mgd_alpha", "adv_weight"))
    for rank in ranks:
        for event in ("start", "epoch_end"):
            r = rank[event]
            assert r["distill"] == ranks[0]["start"]["distill"]
            # rebuilt from args alone: mgd_ratio=0.5, adv_steps=1 arrive
            assert {k: v for k, v in r["distill"].items() if k not in auto} == {
                k: v for k, v in trainer.distill.items() if k not in auto}
            assert r["args_keys"] == sorted(DISTILL_KEYS)
            assert r["ddp"] and r["find_unused_parameters"] is True and r["inner"] == "IKDModel"
            assert r["param_prefixes"] == ["module.distiller", "module.student"]  # adapters inside DDP
            assert not r["teacher_in_ddp"]  # teacher outside
    # ranks trained on different shards, yet hold identical weights after the step: the gradients of the distillation
    # terms were all-reduced together with the detection loss (one loss tensor, scaled by world size by Ultralytics)
    end = [r["epoch_end"] for r in ranks]
    assert end[0]["losses"] != end[1]["losses"] and all(r["losses"]["mgd_loss"] > 0 for r in end)
    assert end[0]["distiller"] == end[1]["distiller"] != ranks[0]["start"]["distiller"]
    assert end[0]["student"] == end[1]["student"] != ranks[0]["start"]["student"]
    # nothing saved depends on the `module.` prefix: rank 0's checkpoint keys are the plain module's
    saved_keys = json.loads((run / "saved_keys.json").read_text())
    assert saved_keys and not any(k.startswith("module.") for k in saved_keys)
    model, _ = load_checkpoint(run / "weights" / "last.pt")
    assert type(model) is DetectionModel and not hasattr(model, "ikd_state")
