"""How the adversarial cache is built at a user's scale: the plan measured on the first batch and a build the disk
cannot hold refused in one line before the rest is attacked, a full disk one line too, a format-2 cache converted
bit for bit instead of attacked again, and a change in how images letterbox found before training and repaired."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from helpers import cache_job, corrupt_keeping_trailer
from ikd_yolo.augment import adv_cache
from ikd_yolo.augment.adv_cache import AdversarialCache, CleanImages, build_cache, open_cache
from ikd_yolo.augment.cache_format2 import encode_png_entry
from ikd_yolo.augment.cache_plan import MARGIN, BuildPlan, CacheSpaceError
from ikd_yolo.augment.cache_store import folder_name


def with_free_bytes(monkeypatch, free: int) -> None:
    """Make the cache's disk report `free` bytes free."""
    real = shutil.disk_usage
    monkeypatch.setattr(adv_cache.shutil, "disk_usage", lambda path: real(path)._replace(free=free))


def test_plan_refuses_exactly_when_the_estimate_with_its_margin_exceeds_the_free_space(tmp_path):
    # two ranks measured 4 images each, 10 kB an image; 100 images left: 1 MB, 1.1 MB with the margin
    samples = [(4, 40_000, 2.0, 50), (4, 40_000, 4.0, 50)]
    need = 100 * 10_000 * MARGIN
    BuildPlan.of(samples, free=int(need) + 1).check(tmp_path)
    with pytest.raises(CacheSpaceError) as e:
        BuildPlan.of(samples, free=int(need) - 1).check(tmp_path)
    assert "\n" not in str(e.value) and "100 images left" in str(e.value) and "10 KB each" in str(e.value)
    plan = BuildPlan.of(samples, free=10 ** 9)
    assert plan.seconds_left == 50.0  # the slower rank's 1 s an image, 50 images
    assert "(2.0 images/s on 2 ranks)" in plan.line(tmp_path)


def test_build_the_disk_cannot_hold_is_refused_in_one_line_after_its_first_batch(attack_setup, tmp_path, monkeypatch,
                                                                                 synthetic_data, teacher_pt, capsys):
    from ikd_yolo.cli import main

    data, teacher, settings, dataset = attack_setup
    with_free_bytes(monkeypatch, 1000)  # less than one entry
    cache = open_cache(tmp_path, teacher, dataset, 64, settings, 0)
    with pytest.raises(CacheSpaceError) as e:
        build_cache(cache, dataset, cache_job(teacher, settings, batch=4))
    assert "\n" not in str(e.value) and str(cache.folder) in str(e.value) and "12 images left" in str(e.value)
    assert len(list(cache.folder.glob("*.adv"))) == 4  # the measured batch, kept for a later run; nothing more
    # the command: exit 2, the same line, before anything beyond its first batch
    monkeypatch.setenv("IKD_YOLO_CACHE", str(tmp_path / "cli"))
    assert main(["attack", f"data={synthetic_data}", f"teacher={teacher_pt}", "imgsz=64", "batch=4", "adv_steps=2",
                 "preview=None"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "12 images left" in err and "IKD_YOLO_CACHE" in err
    assert len(list((tmp_path / "cli").rglob("*.adv"))) == 4


def test_a_full_disk_while_writing_is_one_line(attack_setup, tmp_path, monkeypatch):
    data, teacher, settings, dataset = attack_setup
    cache = open_cache(tmp_path, teacher, dataset, 64, settings, 0)
    real_write = Path.write_bytes

    def full(self, data):
        if self.name.endswith(".tmp") and ".adv." in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(CacheSpaceError, match="is full") as e:
        build_cache(cache, dataset, cache_job(teacher, settings))
    assert "\n" not in str(e.value) and not list(cache.folder.glob(".*.tmp"))


def test_format2_cache_is_converted_bit_for_bit_and_its_bad_entry_attacked(attack_setup, full_cache, tmp_path,
                                                                            ultralytics_log):
    data, teacher, settings, dataset = attack_setup
    cache, entries = full_cache
    old = tmp_path / folder_name({**cache.key, "format": 2})  # the folder format 2 kept the same images in
    old.mkdir()
    for i in range(len(entries)):
        (old / f"{i:07d}.png").write_bytes(encode_png_entry(cache.read(i), cache.image_ids[i]))
    corrupt_keeping_trailer(old / "0000004.png")
    (old / "0000009.png").write_bytes((old / "0000010.png").read_bytes())  # another image's entry
    fresh = AdversarialCache(tmp_path, cache.key, cache.im_files, cache.image_ids, cache.clean)
    stats = build_cache(fresh, dataset, cache_job(teacher, settings, batch=4))
    assert stats["converted"] == 14 and stats["images"] == 2
    assert [fresh.path(i).read_bytes() for i in range(len(entries))] == entries  # as if built in format 3
    said = [m for m in ultralytics_log if "converted" in m]
    assert len(said) == 1 and "14 entries converted" in said[0] and str(old) in said[0]


class Relettered:
    """A dataset whose letterboxed images differ from the original's by one bit: what another Ultralytics or OpenCV
    that resizes differently would give."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __getattr__(self, name):
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.dataset[i])
        item["img"] = item["img"] ^ 1
        return item


def test_images_that_letterbox_differently_are_found_before_training_and_attacked_again(attack_setup, full_cache,
                                                                                        tmp_path, ultralytics_log):
    data, teacher, settings, dataset = attack_setup
    cache, entries = full_cache
    changed = Relettered(dataset)
    moved = AdversarialCache(tmp_path, cache.key, cache.im_files, cache.image_ids, CleanImages(changed))
    moved.folder.mkdir(parents=True)
    for i, entry in enumerate(entries):
        moved.path(i).write_bytes(entry)
    assert moved.missing() == []  # every file is whole: only reading an entry finds its clean image changed
    stats = build_cache(moved, changed, cache_job(teacher, settings))
    assert stats["images"] == 16 and stats["repaired"] == 16
    warned = [m for m in ultralytics_log if "adversarial cache" in m and "again" in m]
    assert len(warned) == adv_cache.NAMED + 1 and "made from another clean image" in warned[0]
    assert "11 more bad entries" in warned[-1]
    assert all(moved.load(i)[1] is None for i in range(16))
