"""Every extra image stream (the adversarial images online and cached, the frequency view, the shared form, the feature
base's adversarial term) gives, for the same seed, the losses it gave before the streams were one design.

`tests/data/stream_losses.json` holds the loss items of the first training steps of each case, written by the code
before the redesign (`python tests/test_streams.py --write CASE` rewrites one case: only when a change of behaviour is
meant). One change was: a cached attack that changes nothing reads the letterboxed training images as the clean stream
(adv_mode=clean) instead of building a cache of them, so its first batches draw other random numbers ("ikd-score
cached, no attack" was rewritten then; its column is stream_loss since: the same values).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "data" / "stream_losses.json"
STEPS = 3  # with adv_every=2 the stream runs on steps 0 and 2

ONLINE = dict(adv_mode="online", adv_every=1)  # what ikd-score attacked with when these losses were written
CASES = {
    "ikd-score online": dict(distill="ikd-score", adv_steps=2, **ONLINE),
    "ikd-score cached every 2": dict(distill="ikd-score", adv_steps=2, adv_every=2, adv_mode="cached"),
    "ikd-score cached, no attack": dict(distill="ikd-score", adv_steps=2, adv_mode="cached", adv_step_size=0.0,
                                        adv_every=1),
    "ikd-score predictions only": dict(distill="ikd-score", adv_steps=1, adv_distill="predictions", **ONLINE),
    "ikd-score frequency view": dict(distill="ikd-score", adv_steps=1, freq_mode="spectral", freq_apply="view",
                                     freq_p=1.0, **ONLINE),
    "ikd-score shared": dict(distill="ikd-score", adv_steps=1, freq_mode="spectral", freq_apply="shared", freq_p=1.0,
                             **ONLINE),
    "ikd-fgd online": dict(distill="ikd-fgd", adv_steps=1),
    "ikd-fgd-full replace": dict(distill="ikd-fgd-full", adv_steps=1, freq_p=1.0),
    "fgd frequency view": dict(distill="fgd", freq_mode="spectral", freq_apply="view", freq_p=1.0),
}


def untrained_teacher(folder: Path) -> Path:
    """A yolo11s teacher with seeded random weights and the synthetic set's classes: the same file on every machine."""
    from ultralytics.nn.tasks import DetectionModel

    from ikd_yolo.data import CLASS_NAMES

    path = folder / "teacher.pt"
    if not path.exists():
        torch.manual_seed(0)
        model = DetectionModel("yolo11s.yaml", nc=len(CLASS_NAMES), verbose=False)
        model.names = dict(enumerate(CLASS_NAMES))
        torch.save({"model": model, "train_args": {}}, path)
    return path


def loss_trace(data: Path, teacher: Path, project: Path, name: str, steps: int = STEPS, **overrides) -> list[dict]:
    """The loss items of the first `steps` training steps of an IKDTrainer (the body of Ultralytics' loop: preprocess,
    forward and loss, backward, optimizer step), seed 0, as {column: value}. The learning rate is 0: an update would
    carry the CPU's rounding (which differs between instruction sets by ~1e-6) into the next step's weights, about
    100x larger each step; with lr0=0 (and an explicit optimizer: auto picks its own rate) each step is the same
    weights on the next batch and its stream's images."""
    from ikd_yolo import IKDTrainer

    args = dict(model="yolo11n.yaml", data=str(data), teacher=str(teacher), epochs=1, imgsz=64, batch=4, workers=0,
                device="cpu", amp=False, plots=False, val=False, verbose=False, seed=0, exist_ok=True,
                project=str(project), name=name, nbs=4, optimizer="SGD", lr0=0.0)
    trainer = IKDTrainer(overrides={**args, **overrides})
    trainer._setup_train()
    trainer._model_train()
    trainer.epoch = 0
    trainer.optimizer.zero_grad()
    trace = []
    for _, batch in zip(range(steps), trainer.train_loader):
        batch = trainer.preprocess_batch(batch)
        loss, items = trainer.model(batch)
        loss.sum().backward()
        trainer.optimizer_step()
        trace.append({column: float(v) for column, v in items.items()})
    return trace


def make_inputs(root: Path) -> tuple[Path, Path]:
    from ikd_yolo.data import make_synthetic_dataset

    data = make_synthetic_dataset(root / "data", n_train=16, n_val=8, imgsz=64, seed=0)
    return data, untrained_teacher(root)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, monkeypatch_module) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("streams")
    monkeypatch_module.setenv("IKD_YOLO_CACHE", str(root / "cache"))  # the cached attack's images
    return (*make_inputs(root), root)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_stream_gives_the_losses_it_gave_before(case, inputs):
    data, teacher, root = inputs
    expected = json.loads(GOLDEN.read_text())[case]
    got = loss_trace(data, teacher, root / "runs", case.replace(" ", "_").replace(",", ""), **CASES[case])
    assert [sorted(step) for step in got] == [sorted(step) for step in expected]  # the same loss columns
    for step, (g, e) in enumerate(zip(got, expected)):
        for column, value in e.items():
            assert g[column] == pytest.approx(value, rel=1e-3, abs=1e-7), f"step {step}, {column}"


def test_the_clean_stream_reads_the_images_a_cache_of_an_attack_that_changes_nothing_holds(inputs):
    from ikd_yolo.augment.adv_cache import attack_dataset, open_attack_cache
    from ikd_yolo.augment.attack import AttackSettings
    from ikd_yolo.augment.image_stream import CachedImages, ImageStream, LetterboxedImages
    from ikd_yolo.config import resolve_distill_config, section
    from ikd_yolo.inputs import load_data
    from ikd_yolo.teacher import FrozenTeacher, load_teacher

    data, teacher, _ = inputs
    data = load_data(data)
    model = FrozenTeacher(load_teacher(teacher, nc=data["nc"])).model
    settings = section(AttackSettings, resolve_distill_config({"adv_steps": 2, "adv_step_size": 0.0}))
    cache, _ = open_attack_cache(model, data, 64, settings, "cpu", 8, progress=False)
    cached, clean = CachedImages(cache, 0.5), LetterboxedImages(attack_dataset(data, 64, 8), 0.5)
    torch.manual_seed(0)
    a = [cached[i][0] for i in range(len(cached))]
    torch.manual_seed(0)
    b = [clean[i][0] for i in range(len(clean))]
    assert len(a) == len(b) == 16 and all(torch.equal(x, y) for x, y in zip(a, b))  # the same flips too
    cpu = torch.device("cpu")
    streams = []
    for images in (cached, clean):
        torch.manual_seed(1)  # the flips' draws
        streams.append(ImageStream(images, 0, seed=3).next(5, cpu))
    assert torch.equal(*streams)  # the same order for the same seed


def test_a_clean_stream_trains_without_building_a_cache(inputs):
    from ikd_yolo.streams import streams_of

    data, teacher, root = inputs
    cfg = dict(distill="ikd-score", adv_mode="clean", adv_every=2)
    from ikd_yolo.config import resolve_distill_config

    (stream,) = streams_of(resolve_distill_config(cfg))
    assert (stream.name, stream.source, stream.attack, stream.weigh_by) == ("stream", "loader", "none", "own")
    before = set((root / "cache").rglob("*.adv")) if (root / "cache").exists() else set()
    trace = loss_trace(data, teacher, root / "runs", "clean", **cfg)
    assert [step["stream_loss"] > 0 for step in trace] == [True, False, True]  # on every second step
    after = set((root / "cache").rglob("*.adv")) if (root / "cache").exists() else set()
    assert after == before  # nothing attacked, nothing stored


class Numbered(torch.utils.data.Dataset):
    """20 one-pixel images whose value is their index."""

    def __len__(self) -> int:
        return 20

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((1, 1, 1), i, dtype=torch.uint8), -1


def drawn_indices(stream, batches: int, k: int = 2) -> list[list[int]]:
    cpu = torch.device("cpu")
    return [(stream.next(k, cpu) * 255).round().int().flatten().tolist() for _ in range(batches)]


def test_a_stream_goes_on_where_it_stopped_and_ddp_ranks_share_its_batches():
    from ikd_yolo.augment.image_stream import ImageStream

    whole = drawn_indices(ImageStream(Numbered(), 0, seed=3), 25)  # two and a half passes of 10 batches
    assert all(sorted(sum(whole[p * 10:(p + 1) * 10], [])) == list(range(20)) for p in (0, 1))  # each pass: a shuffle
    assert whole[:10] != whole[10:20]  # another order each pass
    for stopped in (0, 7, 10, 13):  # a resumed run starts at the batch it stopped at, inside a pass or at its start
        assert drawn_indices(ImageStream(Numbered(), 0, seed=3, drawn=stopped), 5) == whole[stopped:stopped + 5]
    ranks = [drawn_indices(ImageStream(Numbered(), 0, seed=3, rank=r, world=2), 10) for r in (0, 1)]
    assert ranks[0][:5] == whole[0:10:2] and ranks[1][:5] == whole[1:10:2]  # each rank its share of a pass
    assert ranks[0][5:] == whole[10:20:2] and ranks[1][5:] == whole[11:20:2]
    resumed = drawn_indices(ImageStream(Numbered(), 0, seed=3, drawn=6, rank=1, world=2), 3)
    assert resumed == ranks[1][6:9]


if __name__ == "__main__" and sys.argv[1:2] == ["--write"]:
    import os
    import tempfile

    chosen = sys.argv[2:] or sorted(CASES)
    traces = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["IKD_YOLO_CACHE"] = str(Path(tmp) / "cache")
        data, teacher = make_inputs(Path(tmp))
        traces.update({case: loss_trace(data, teacher, Path(tmp) / "runs", str(i), **CASES[case])
                       for i, case in enumerate(chosen)})
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(dict(sorted(traces.items())), indent=1) + "\n")
    print(f"wrote {', '.join(chosen)} in {GOLDEN}")
