"""The cached adversarial mode: a key that changes with everything the images depend on, lossless resumable storage,
and training that builds, reuses and streams the cache."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from ultralytics.cfg import get_cfg

from helpers import read_results, train_kwargs
from ikd_yolo.augment.adv_cache import AdversarialCache, AdversarialStream, attack_dataset, build_cache, cache_key
from ikd_yolo.augment.attack import AdversarialAttack, AttackSettings
from ikd_yolo.config import resolve_distill_config, section
from ikd_yolo.inputs import load_data
from ikd_yolo.teacher import FrozenTeacher, load_teacher


@pytest.fixture(scope="module")
def setup(synthetic_data, teacher_pt):
    data = load_data(synthetic_data)
    teacher = FrozenTeacher(load_teacher(teacher_pt, nc=data["nc"])).model
    teacher.args = get_cfg()
    settings = section(AttackSettings, resolve_distill_config({"adv_steps": 2}))
    return data, teacher, settings, attack_dataset(data, 64, 8)


def test_key_follows_teacher_weights_data_size_and_attack(setup):
    data, teacher, settings, dataset = setup
    key = cache_key(teacher, dataset, 64, settings, 0)
    assert key == cache_key(copy.deepcopy(teacher), dataset, 64, settings, 0)  # the same inputs, the same key
    other = copy.deepcopy(teacher)
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-3
    changed = [cache_key(other, dataset, 64, settings, 0), cache_key(teacher, dataset, 96, settings, 0),
               cache_key(teacher, dataset, 64, replace(settings, eps=4 / 255), 0),
               cache_key(teacher, dataset, 64, replace(settings, steps=3), 0), cache_key(teacher, dataset, 64, settings, 1)]
    assert all(k != key for k in changed)
    assert cache_key(teacher, dataset, 64, replace(settings, frac=0.5, every=4, mode="online"), 0) == key  # train-time
    folders = {AdversarialCache("root", k, dataset.im_files).folder for k in (key, *changed)}
    assert len(folders) == 6


def test_build_is_lossless_and_resumes_with_only_the_missing_images(setup, tmp_path):
    data, teacher, settings, dataset = setup
    cache = AdversarialCache(tmp_path, cache_key(teacher, dataset, 64, settings, 0), dataset.im_files)
    attack = AdversarialAttack(replace(settings, frac=1.0))
    first = build_cache(cache, dataset, teacher, attack, torch.device("cpu"), batch=8, progress=False)
    n = len(dataset.im_files)
    assert first["images"] == n and cache.missing() == []
    # the attack moves the 8-bit clean image in steps of 2/255 inside an 8/255 ball: the PNG holds it exactly
    batch = dataset.collate_fn([dataset[i] for i in range(8)])
    batch["img"] = batch["img"].float() / 255
    x_adv = attack(teacher, teacher.init_criterion(), batch, generator=torch.Generator().manual_seed(0))
    stored = torch.stack([torch.from_numpy(cache.read(i).copy()).permute(2, 0, 1) for i in range(8)]).float() / 255
    assert (stored - x_adv).abs().max() < 1e-5 and (stored - batch["img"]).abs().max() > 1 / 255
    # a killed build: one entry never written, one cut short; the rerun attacks exactly those two
    cache.path(3).unlink()
    cache.path(5).write_bytes(cache.path(5).read_bytes()[:200])
    assert cache.missing() == [3, 5]
    again = build_cache(cache, dataset, teacher, attack, torch.device("cpu"), batch=8, progress=False)
    assert again["images"] == 2 and cache.missing() == []
    assert cache.read(5).shape == (64, 64, 3)


def test_stream_serves_flipped_batches_forever(setup, tmp_path):
    data, teacher, settings, dataset = setup
    cache = AdversarialCache(tmp_path, cache_key(teacher, dataset, 64, settings, 0), dataset.im_files)
    build_cache(cache, dataset, teacher, AdversarialAttack(settings), torch.device("cpu"), batch=8, progress=False)
    stored = {bytes(np.ascontiguousarray(cache.read(i)).tobytes()) for i in range(len(dataset.im_files))}
    flipped = {bytes(np.ascontiguousarray(cache.read(i)[:, ::-1]).tobytes()) for i in range(len(dataset.im_files))}
    stream = AdversarialStream(cache, fliplr=0.5, workers=0, seed=0)
    seen = [stream.next(6, torch.device("cpu")) for _ in range(7)]  # more than one pass over 16 images
    assert all(b.shape == (6, 3, 64, 64) and b.dtype == torch.float32 for b in seen)
    images = [(b[i] * 255).round().byte().permute(1, 2, 0).numpy().tobytes() for b in seen for i in range(6)]
    assert all(im in stored or im in flipped for im in images)
    assert any(im in flipped and im not in stored for im in images)  # some were flipped


def test_cached_training_builds_the_cache_and_resume_reuses_it(tmp_path, synthetic_data, teacher_pt, monkeypatch,
                                                             ultralytics_log):
    from ultralytics import YOLO

    from ikd_yolo import IKDTrainer

    monkeypatch.setenv("IKD_YOLO_CACHE", str(tmp_path / "cache"))
    kwargs = dict(teacher=str(teacher_pt), data=str(synthetic_data), distill="ikd-fgd-full", adv_mode="cached",
                  adv_steps=1, **train_kwargs(tmp_path, "cached", epochs=2, val=False, save_period=1))
    YOLO("yolo11n.yaml").train(trainer=IKDTrainer, **kwargs)
    folders = list((tmp_path / "cache" / "adv").iterdir())
    assert len(folders) == 1 and len(list(folders[0].glob("*.png"))) == 16
    results = read_results(tmp_path / "cached")
    assert results["train/adv_loss"][0] > 0
    built = [m for m in ultralytics_log if "adversarial cache" in m]
    assert len(built) == 1 and "16 attacked now" in built[0]
    ultralytics_log.clear()
    epoch1 = tmp_path / "cached" / "weights" / "epoch0.pt"
    last = tmp_path / "cached" / "weights" / "last.pt"
    last.write_bytes(epoch1.read_bytes())  # as if killed after the first epoch
    IKDTrainer(overrides={"model": str(last), "resume": str(last)}).train()
    reused = [m for m in ultralytics_log if "adversarial cache" in m]
    assert len(reused) == 1 and "0 attacked now" in reused[0] and str(folders[0]) in reused[0]
