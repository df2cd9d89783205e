"""The adversarial cache built by the ranks of a DDP run together (2 gloo ranks on the CPU, launched by
torch.distributed.run as Ultralytics' DDP launch does): each image attacked exactly once, by one rank, and the cache
byte for byte the one a single process builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

RANK_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    import torch.distributed as dist
    from ultralytics.cfg import get_cfg
    from ikd_yolo.augment.adv_cache import CacheJob, attack_dataset, build_cache, open_cache
    from ikd_yolo.augment.attack import AdversarialAttack, AttackSettings
    from ikd_yolo.config import resolve_distill_config, section
    from ikd_yolo.inputs import load_data
    from ikd_yolo.teacher import FrozenTeacher, load_teacher

    data_yaml, teacher_pt, root, out = sys.argv[1:5]
    dist.init_process_group("gloo")
    data = load_data(data_yaml)
    teacher = FrozenTeacher(load_teacher(teacher_pt, nc=data["nc"])).model
    teacher.args = get_cfg()
    dataset = attack_dataset(data, 64, 4)
    attacked = []

    class Recorded(AdversarialAttack):  # names the images each call attacks
        def __call__(self, teacher, criterion, batch, generator=None):
            attacked.extend(dataset.im_files.index(f) for f in batch["im_file"])
            return super().__call__(teacher, criterion, batch, generator=generator)

    settings = section(AttackSettings, resolve_distill_config({"adv_steps": 2}))
    cache = open_cache(root, teacher, dataset, 64, settings, 0)
    stats = build_cache(cache, dataset, CacheJob(teacher, Recorded(settings), torch.device("cpu"), 4, progress=False))
    with open(f"{out}/rank{dist.get_rank()}.json", "w") as f:
        json.dump({"attacked": attacked, "stats": stats, "folder": str(cache.folder)}, f)
    dist.destroy_process_group()
    # no interpreter teardown: with Ultralytics imported, a gloo rank here aborts in it 3 runs in 10 ("terminate
    # called without an active exception"), with no cache code run at all
    os._exit(0)
""")


def test_two_ranks_attack_each_image_once_and_build_the_one_process_cache(full_cache, synthetic_data, teacher_pt,
                                                                          tmp_path):
    cache, entries = full_cache  # built by one process in batches of 8 (the ranks: 4)
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(synthetic_data), str(teacher_pt), str(tmp_path / "adv"), str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    attacked = [rank["attacked"] for rank in ranks]
    assert sorted(attacked[0] + attacked[1]) == list(range(16))  # every image once
    assert len(attacked[0]) == len(attacked[1]) == 8  # an even share each
    assert all(rank["stats"]["images"] == 16 for rank in ranks)  # both report the whole build
    folder = tmp_path / "adv" / cache.folder.name  # the same key
    assert ranks[0]["folder"] == ranks[1]["folder"] == str(folder)
    assert [(folder / cache.path(i).name).read_bytes() for i in range(16)] == entries
    manifest = json.loads((folder / "cache.json").read_text())
    assert manifest["image_ids"] == cache.image_ids and not list(folder.glob(".*.tmp"))
