"""The cached adversarial mode: a key that changes with everything the images depend on (image bytes included),
lossless resumable storage whose entries are checked when read and repaired when bad, the same entry whether built
alone or in a full build, a format-2 cache converted, a build planned on its first batch and refused when the disk
cannot hold it, a read-only cache used as it is, two writers serialised, and training that builds, reuses and streams
the cache; `ikd-yolo attack` refusing bad arguments in one line."""

from __future__ import annotations

import builtins
import copy
import errno
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers import cache_job, corrupt_keeping_trailer, read_results, train_kwargs
from ikd_yolo.augment.adv_cache import (AdversarialCache, CacheEntryError, attack_dataset, build_cache,
                                        cache_key, image_ids, image_seed, open_cache, prepare_cache)
from ikd_yolo.augment.image_stream import CachedImages, ImageStream
from ikd_yolo.augment.attack import AdversarialAttack
from ikd_yolo.inputs import load_data

CPU = torch.device("cpu")


def own_dataset(root: Path) -> Path:
    """data.yaml of a private copy of the synthetic set (tests that edit images must not touch the shared one)."""
    from ikd_yolo.data import make_synthetic_dataset

    return make_synthetic_dataset(root / "data", n_train=16, n_val=8, imgsz=64, seed=0)


def edit_jpeg_same_size(path: Path) -> None:
    """Paint a square into a JPEG and store it at exactly its old byte size (a comment segment pads it)."""
    size = path.stat().st_size
    img = cv2.imread(str(path))
    img[8:24, 8:24] = (0, 0, 255)
    for quality in range(95, 10, -5):
        buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        pad = size - len(buf) - 4
        if pad >= 0:
            path.write_bytes(buf[:2] + b"\xff\xfe" + struct.pack(">H", pad + 2) + b"\0" * pad + buf[2:])
            assert path.stat().st_size == size
            return
    raise AssertionError("could not re-encode the image small enough")


def cache_warnings(log: list[str]) -> list[str]:
    return [m for m in log if "adversarial cache entry" in m]


def test_key_follows_teacher_weights_data_size_and_attack(attack_setup):
    data, teacher, settings, dataset = attack_setup
    key = cache_key(teacher, dataset, 64, settings, 0)
    assert key == cache_key(copy.deepcopy(teacher), dataset, 64, settings, 0)  # the same inputs, the same key
    assert key["format"] == 3
    other = copy.deepcopy(teacher)
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-3
    changed = [cache_key(other, dataset, 64, settings, 0), cache_key(teacher, dataset, 96, settings, 0),
               cache_key(teacher, dataset, 64, replace(settings, eps=4 / 255), 0),
               cache_key(teacher, dataset, 64, replace(settings, steps=3), 0),
               cache_key(teacher, dataset, 64, settings, 1)]
    assert all(k != key for k in changed)
    # how an image is perturbed, nothing of when its stream runs or how much of a batch it takes
    assert set(key["attack"]) == {"steps", "eps", "step_size", "decay", "di_p"}
    ids = image_ids(dataset)
    folders = {AdversarialCache("root", k, dataset.im_files, ids).folder for k in (key, *changed)}
    assert len(folders) == 6


def test_image_edited_in_place_at_the_same_size_is_a_new_key_and_attacked_again(attack_setup, tmp_path):
    _, teacher, settings, _ = attack_setup
    data = load_data(own_dataset(tmp_path))
    dataset = attack_dataset(data, 64, 8)
    before = open_cache(tmp_path / "adv", teacher, dataset, 64, settings, 0)
    build_cache(before, dataset, cache_job(teacher, settings))
    old = [before.read(i) for i in (0, 3)]
    edited = Path(dataset.im_files[3])
    edit_jpeg_same_size(edited)
    # the old entry of the edited image is a difference to a clean image that is gone: named, never served
    assert before.load(3)[1].startswith("made from another clean image")
    dataset = attack_dataset(data, 64, 8)  # reads the edited image
    after = open_cache(tmp_path / "adv", teacher, dataset, 64, settings, 0)
    assert after.key["data"] != before.key["data"] and after.folder != before.folder
    assert after.image_ids[3] != before.image_ids[3] and after.image_ids[:3] == before.image_ids[:3]
    stats = build_cache(after, dataset, cache_job(teacher, settings))
    assert stats["images"] == 16 and after.missing() == []
    assert (after.read(3) != old[1]).any() and (after.read(0) == old[0]).all()


def test_build_is_lossless_and_resumes_with_only_the_missing_images(attack_setup, tmp_path, ultralytics_log):
    data, teacher, settings, dataset = attack_setup
    cache = open_cache(tmp_path, teacher, dataset, 64, settings, 0)
    attack = AdversarialAttack(settings)
    first = build_cache(cache, dataset, cache_job(teacher, settings))
    n = len(dataset.im_files)
    assert first["images"] == n and cache.missing() == []
    # the attack moves the 8-bit clean image in steps of 2/255 inside an 8/255 ball: the entry holds it exactly
    batch = dataset.collate_fn([dataset[i] for i in range(8)])
    batch["img"] = batch["img"].float() / 255
    streams = [torch.Generator().manual_seed(image_seed(0, cache.image_ids[i])) for i in range(8)]
    x_adv = attack(teacher, teacher.init_criterion(), batch, generator=streams)
    stored = torch.stack([torch.from_numpy(cache.read(i).copy()).permute(2, 0, 1) for i in range(8)]).float() / 255
    assert (stored - x_adv).abs().max() < 1e-5 and (stored - batch["img"]).abs().max() > 1 / 255
    # a killed build: one entry never written, one cut short; the rerun attacks exactly those two
    cache.path(3).unlink()
    cache.path(5).write_bytes(cache.path(5).read_bytes()[:200])
    assert cache.missing() == [3, 5]
    again = build_cache(cache, dataset, cache_job(teacher, settings))
    assert again["images"] == 2 and again["repaired"] == 1 and cache.missing() == []
    assert cache.read(5).shape == (64, 64, 3)
    assert len(cache_warnings(ultralytics_log)) == 1  # the cut one is named, the missing one is just attacked


def test_entry_rebuilt_alone_is_byte_identical_to_the_full_build(attack_setup, full_cache, tmp_path):
    data, teacher, settings, dataset = attack_setup
    cache, entries = full_cache
    alone = AdversarialCache(tmp_path, cache.key, cache.im_files, cache.image_ids, cache.clean)
    alone.folder.mkdir(parents=True)
    for i in range(len(entries)):
        if i != 6:
            alone.path(i).write_bytes(entries[i])
    stats = build_cache(alone, dataset, cache_job(teacher, settings))
    assert stats["images"] == 1 and alone.path(6).read_bytes() == entries[6]


def test_cache_built_in_batches_of_4_equals_one_built_one_by_one(attack_setup, full_cache, tmp_path):
    data, teacher, settings, dataset = attack_setup
    _, entries = full_cache
    for batch in (4, 1):
        cache = open_cache(tmp_path / str(batch), teacher, dataset, 64, settings, 0)
        build_cache(cache, dataset, cache_job(teacher, settings, batch))
        assert [cache.path(i).read_bytes() for i in range(len(entries))] == entries, batch


def test_corrupt_entry_is_named_once_and_repaired_bit_for_bit(attack_setup, full_cache, tmp_path, monkeypatch,
                                                            synthetic_data, teacher_pt, ultralytics_log):
    from ikd_yolo.attack_command import run_attack

    data, teacher, settings, dataset = attack_setup
    monkeypatch.setenv("IKD_YOLO_CACHE", str(tmp_path))
    cache, stats = prepare_cache(cache_job(teacher, settings), data, 64)
    assert stats["images"] == 16
    original = cache.path(9).read_bytes()
    for repair in ("prepare_cache", "run_attack"):
        ultralytics_log.clear()
        corrupt_keeping_trailer(cache.path(9))
        assert cache.path(9).read_bytes()[-12:] == original[-12:] and cache.path(9).read_bytes() != original
        if repair == "prepare_cache":
            again, stats = prepare_cache(cache_job(teacher, settings), data, 64)
        else:
            stats = run_attack(str(synthetic_data), str(teacher_pt), imgsz=64, batch=8, preview=None, adv_steps=2)
        assert stats["images"] == 1 and stats["repaired"] == 1, repair
        warned = cache_warnings(ultralytics_log)
        assert len(warned) == 1 and str(cache.path(9)) in warned[0] and dataset.im_files[9] in warned[0], repair
        assert cache.path(9).read_bytes() == original, repair


def test_stream_names_an_entry_gone_bad_during_training(full_cache, tmp_path):
    cache, entries = full_cache
    copy_ = AdversarialCache(tmp_path, cache.key, cache.im_files, cache.image_ids, cache.clean)
    copy_.folder.mkdir(parents=True)
    for i, entry in enumerate(entries):
        copy_.path(i).write_bytes(entry)
    corrupt_keeping_trailer(copy_.path(2))
    stream = ImageStream(CachedImages(copy_, fliplr=0.0), workers=0, seed=0)
    with pytest.raises(CacheEntryError) as e:
        for _ in range(4):
            stream.next(8, CPU)
    assert "\n" not in str(e.value) and str(copy_.path(2)) in str(e.value) and cache.im_files[2] in str(e.value)


class Written(PermissionError):
    """Raised by the write guards of the read-only test, as a read-only volume would."""

    def __init__(self, what: str) -> None:
        super().__init__(errno.EROFS, os.strerror(errno.EROFS), what)


def forbid_writes(monkeypatch) -> None:
    """Make every way this code writes a file raise (tests run as root, where chmod does not stop writes)."""
    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            raise Written(f"open({file!r}, {mode!r})")
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise Written(f"os.open({path!r})")
        return real_os_open(path, flags, *args, **kwargs)

    def refuse(name):
        def f(*args, **kwargs):
            raise Written(f"{name}{args}")
        return f

    real_mkdir = Path.mkdir

    def guarded_mkdir(self, *args, **kwargs):  # `mkdir(exist_ok=True)` of a folder that exists writes nothing
        if not self.is_dir():
            raise Written(f"Path.mkdir({self})")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    for name in ("replace", "rename", "unlink", "remove"):
        monkeypatch.setattr(os, name, refuse(f"os.{name}"))
    for name in ("write_text", "write_bytes", "touch", "unlink"):
        monkeypatch.setattr(Path, name, refuse(f"Path.{name}"))
    monkeypatch.setattr(Path, "mkdir", guarded_mkdir)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of a folder and of everything in it."""
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in [folder, *folder.rglob("*")]}


def test_complete_cache_on_a_read_only_folder_is_used_without_writing(attack_setup, tmp_path, monkeypatch):
    data, teacher, settings, _ = attack_setup
    monkeypatch.setenv("IKD_YOLO_CACHE", str(tmp_path))
    cache, stats = prepare_cache(cache_job(teacher, settings), data, 64)
    assert stats["images"] == 16 and (cache.folder / "cache.json").is_file()
    subprocess.run(["chmod", "-R", "a-w", str(tmp_path)], check=True)
    try:
        before = snapshot(tmp_path)
        with monkeypatch.context() as m:
            forbid_writes(m)
            again, stats = prepare_cache(cache_job(teacher, settings), data, 64)
            batch = ImageStream(CachedImages(again, fliplr=0.5), workers=0, seed=0).next(8, CPU)
        assert stats["images"] == 0 and again.folder == cache.folder and batch.shape == (8, 3, 64, 64)
        assert snapshot(tmp_path) == before
        with monkeypatch.context() as m:  # an incomplete cache there: one line saying it cannot be written
            forbid_writes(m)
            missing = AdversarialCache(tmp_path / "adv", {**cache.key, "seed": 7}, cache.im_files, cache.image_ids)
            with pytest.raises(Exception, match="cannot be written") as e:
                build_cache(missing, attack_dataset(data, 64, 8), cache_job(teacher, settings))
            assert "\n" not in str(e.value)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(tmp_path)], check=True)


WRITER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from ikd_yolo.augment import adv_cache
    from ikd_yolo.attack_command import run_attack

    data, teacher, go = sys.argv[1:4]
    real_store = adv_cache.AdversarialCache.store

    def slow_store(self, i, *args):  # a build long enough for the other writer to arrive while it runs
        time.sleep(0.15)
        real_store(self, i, *args)

    adv_cache.AdversarialCache.store = slow_store
    real_check = adv_cache.AdversarialCache.check
    first = []

    def check_then_wait(self, indices=None, full=False):  # both writers see every entry missing before either starts
        status = real_check(self, indices, full)
        if not first:
            first.append(1)
            Path(go + "." + sys.argv[4]).touch()
            while not Path(go).exists():
                time.sleep(0.05)
        return status

    adv_cache.AdversarialCache.check = check_then_wait
    report = run_attack(data, teacher, imgsz=64, batch=4, preview=None, adv_steps=2)
    print("REPORT " + json.dumps({"images": report["images"], "cache": report["cache"]}))
""")


def test_two_concurrent_writers_attack_each_image_once(teacher_pt, tmp_path):
    data = own_dataset(tmp_path)
    go = tmp_path / "go"
    env = {**os.environ, "IKD_YOLO_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(data), str(teacher_pt), str(go), str(k)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for k in range(2)]
    deadline = time.time() + 300
    while not all(Path(f"{go}.{k}").exists() for k in range(2)) and time.time() < deadline:  # both at their check
        time.sleep(0.1)
    go.touch()
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    reports = [json.loads(next(line[7:] for line in out.splitlines() if line.startswith("REPORT "))) for out in outputs]
    assert sum(r["images"] for r in reports) == 16 and reports[0]["cache"] == reports[1]["cache"]
    assert sorted(r["images"] for r in reports) == [0, 16]
    assert any("waiting for another run" in out for out in outputs)
    folder = Path(reports[0]["cache"])
    data_dict = load_data(data)
    dataset = attack_dataset(data_dict, 64, 4)
    cache = AdversarialCache(folder.parent, json.loads((folder / "cache.json").read_text())["key"], dataset.im_files,
                             image_ids(dataset))
    assert cache.folder == folder and cache.missing() == [] and not list(folder.glob("*.tmp"))


def test_stream_serves_flipped_batches_forever(full_cache):
    cache, _ = full_cache
    n = len(cache.im_files)
    stored = {bytes(np.ascontiguousarray(cache.read(i)).tobytes()) for i in range(n)}
    flipped = {bytes(np.ascontiguousarray(cache.read(i)[:, ::-1]).tobytes()) for i in range(n)}
    stream = ImageStream(CachedImages(cache, fliplr=0.5), workers=0, seed=0)
    seen = [stream.next(6, CPU) for _ in range(7)]  # more than one pass over 16 images
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
    assert len(folders) == 1 and len(list(folders[0].glob("*.adv"))) == 16
    results = read_results(tmp_path / "cached")
    assert results["train/adv_loss"][0] > 0
    built = [m for m in ultralytics_log if "adversarial cache" in m]
    # the plan measured on the first batch, then the cache built
    assert len(built) == 2 and "8 images left to attack" in built[0] and "16 attacked now" in built[1]
    ultralytics_log.clear()
    epoch1 = tmp_path / "cached" / "weights" / "epoch0.pt"
    last = tmp_path / "cached" / "weights" / "last.pt"
    last.write_bytes(epoch1.read_bytes())  # as if killed after the first epoch
    IKDTrainer(overrides={"model": str(last), "resume": str(last)}).train()
    reused = [m for m in ultralytics_log if "adversarial cache" in m]
    assert len(reused) == 1 and "0 attacked now" in reused[0] and str(folders[0]) in reused[0]


@pytest.mark.parametrize("arg, says", [("imgsz=0", "imgsz=0"), ("imgsz=-64", "imgsz=-64"), ("imgsz=abc", "imgsz='abc'"),
                                       ("imgsz=64.5", "imgsz=64.5"), ("batch=0", "batch=0"), ("batch=-1", "batch=-1"),
                                       ("n=0", "n=0"), ("seed=x", "seed='x'")])
def test_attack_refuses_bad_numbers_in_one_line(arg, says, synthetic_data, teacher_pt, capsys, monkeypatch,
                                                tmp_path):
    from ikd_yolo.cli import main

    monkeypatch.setenv("IKD_YOLO_CACHE", str(tmp_path / "cache"))
    assert main(["attack", f"data={synthetic_data}", f"teacher={teacher_pt}", arg]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and says in err and "e.g." in err
    assert not (tmp_path / "cache" / "adv").exists()  # refused before any work


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_attack_refuses_a_gpu_device_without_gpu_in_one_line(synthetic_data, teacher_pt, capsys, monkeypatch, tmp_path):
    from ikd_yolo.cli import main

    monkeypatch.setenv("IKD_YOLO_CACHE", str(tmp_path / "cache"))
    assert main(["attack", f"data={synthetic_data}", f"teacher={teacher_pt}", "device=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "device=0" in err and "device=cpu" in err
    assert not (tmp_path / "cache" / "adv").exists()


def test_attack_rounds_imgsz_up_to_the_stride_as_train_does(synthetic_data, teacher_pt, monkeypatch, tmp_path,
                                                            capsys):
    from ikd_yolo.attack_command import run_attack

    monkeypatch.setenv("IKD_YOLO_CACHE", str(tmp_path / "cache"))
    report = run_attack(str(synthetic_data), str(teacher_pt), imgsz=33, batch=8, preview=None, adv_steps=1)
    folder = Path(report["cache"])
    manifest = json.loads((folder / "cache.json").read_text())
    assert manifest["key"]["imgsz"] == 64
    cache = AdversarialCache(folder.parent, manifest["key"], manifest["images"], manifest["image_ids"])
    assert cache.folder == folder and cache.status(0) is None  # a whole entry of 64x64 px
