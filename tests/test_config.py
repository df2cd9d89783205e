"""Distillation settings: presets, precedence, and one-line errors for bad input."""

from __future__ import annotations

import re

import pytest

from ikd_yolo.config import (
    DEFAULTS,
    DistillConfigError,
    adversarial_term_on,
    check_value,
    effective_settings,
    preset_names,
    resolve_distill_config,
    split_distill_args,
)


def test_every_preset_resolves_to_every_key():
    for name in preset_names():
        cfg = resolve_distill_config({"distill": name})
        assert set(cfg) == set(DEFAULTS)


def test_precedence_defaults_then_preset_then_explicit():
    cfg = resolve_distill_config({"distill": "mgd", "mgd_ratio": 0.5})
    assert cfg["kd_loss"] == "mgd"  # from the preset
    assert cfg["mgd_ratio"] == 0.5  # explicit wins
    assert cfg["fgd_temp"] == DEFAULTS["fgd_temp"]  # untouched default
    assert cfg["freq_mode"] == "off" and not adversarial_term_on(cfg)  # plain presets switch IKD off


def test_ikd_presets_switch_augmentations_on_and_ablations_off():
    full = resolve_distill_config({"distill": "ikd-fgd-full"})
    assert full["freq_mode"] == "spectral" and full["adv_weight"] == "auto"  # on, its weight measured in training
    assert resolve_distill_config({"distill": "ikd-fgd-full", "weights": "fixed"})["adv_weight"] > 0
    tuned = resolve_distill_config({"distill": "ikd-fgd"})  # the tuned FGD preset: the frequency part measured to hurt
    assert tuned["freq_mode"] == "off" and tuned["adv_weight"] == "auto"
    assert not adversarial_term_on(resolve_distill_config({"distill": "ikd-fgd-freq"}))
    assert resolve_distill_config({"distill": "ikd-mgd-adv"})["freq_mode"] == "off"
    assert resolve_distill_config({"distill": "ikd-fgd-paper"})["freq_mode"] == "paper"


def test_user_yaml(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("kd_loss: cwd\ncwd_tau: 2.0\n")
    cfg = resolve_distill_config({"distill": str(path)})
    assert (cfg["kd_loss"], cfg["cwd_tau"]) == ("cwd", 2.0)


@pytest.mark.parametrize(
    "explicit, message",
    [
        ({"distill": "fgdd"},
         "distill='fgdd' is neither a preset nor a YAML file. Did you mean 'fgd'? Presets: cwd, fgd,"),
        ({"fgd_alpha": -1e-3}, "fgd_alpha=-0.001 must not be negative: use 0 to turn the term off"),
        ({"adv_steps": "five"}, "adv_steps='five' must be a number (default 2)"),
        ({"adv_steps": 2.5}, "adv_steps=2.5 must be a whole number (default 2)"),
        ({"freq_mode": "fft"}, "freq_mode='fft' is not valid: choose one of off, spectral, paper"),
        ({"freq_p": 1.5}, "freq_p=1.5 must lie in [0, 1]"),
        ({"freq_lam": [0.9, 0.1]},
         "freq_lam=[0.9, 0.1] must be a range [min, max] of two numbers with 0 <= min <= max"),
    ],
)
def test_bad_values_raise_one_clear_line(explicit, message):
    with pytest.raises(DistillConfigError) as e:
        resolve_distill_config(explicit)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_unknown_key_in_yaml_suggests_closest(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("kd_loss: fgd\nfgd_alpah: 0.1\n")
    with pytest.raises(DistillConfigError,
                       match=r"unknown key 'fgd_alpah' in distill YAML .* Did you mean 'fgd_alpha'\?"):
        resolve_distill_config({"distill": str(path)})


def test_yaml_that_does_not_parse(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("kd_loss: [fgd\n")
    with pytest.raises(DistillConfigError, match=r"does not parse \(line 2, column 1\): fix the YAML syntax"):
        resolve_distill_config({"distill": str(path)})


def test_split_routes_keys_and_rejects_typos():
    distill, rest = split_distill_args({"epochs": 3, "kd_loss": "mse", "teacher": "t.pt"})
    assert distill == {"kd_loss": "mse", "teacher": "t.pt"} and rest == {"epochs": 3}
    with pytest.raises(DistillConfigError,
                       match="'epochz' is not a valid ikd-yolo or Ultralytics argument. Did you mean 'epochs'"):
        split_distill_args({"epochz": 3})


def test_renamed_key_still_works_with_one_deprecation_line(tmp_path, ultralytics_log):
    old = tmp_path / "old.yaml"
    old.write_text("kd_loss: fgd\nadv_step: 0.004\n")
    for explicit in ({"adv_step": 0.004}, {"distill": str(old)}):
        ultralytics_log.clear()
        assert resolve_distill_config(explicit)["adv_step_size"] == 0.004
        assert [m for m in ultralytics_log if "'adv_step'" in m] == [
            m for m in ultralytics_log if "is now called 'adv_step_size'" in m] and len(ultralytics_log) == 1
        assert ultralytics_log[0].endswith("the old name is accepted until ikd-yolo 0.3.0")  # when the shim goes
    assert "adv_step" not in DEFAULTS and resolve_distill_config({"adv_step": 0.1, "adv_step_size": 0.2})[
        "adv_step_size"] == 0.2  # the new name wins


def test_every_schema_line_is_checked_from_its_comment():
    """Kinds and bounds come from default.yaml: each key refuses a value just outside its bound."""
    from ikd_yolo.config import SCHEMA

    for key, spec in SCHEMA.items():
        if spec.kind in {"float", "int", "weight"} and spec.lo is not None:
            with pytest.raises(DistillConfigError, match=key):
                resolve_distill_config({key: spec.lo - 1})
        if spec.kind == "choice":
            with pytest.raises(DistillConfigError, match=key):
                resolve_distill_config({key: "no-such-choice"})
    assert SCHEMA["kd_loss"].choices == ("mse", "cwd", "mgd", "fgd", "score", "none")  # the losses the code implements
    assert SCHEMA["freq_mix"].choices == ("complex", "amplitude")


# ---- default.yaml is the default run; a custom YAML starts from it or from the preset it extends --------------------
def test_default_yaml_holds_what_a_default_run_uses(tmp_path):
    """Every value of configs/default.yaml is the default preset's, so a run without distill= and a custom YAML that
    sets nothing train exactly what the default preset trains."""
    default_run = resolve_distill_config({})
    assert default_run == resolve_distill_config({"distill": DEFAULTS["distill"]})
    fixed = resolve_distill_config({"weights": "fixed"})  # weights=auto aside, every value is default.yaml's
    assert {k: v for k, v in fixed.items() if k != "weights"} == {
        k: check_value(k, v) for k, v in DEFAULTS.items() if k != "weights"}  # check_value: YAML's bare off is False
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing set\n")
    assert {**resolve_distill_config({"distill": str(empty)}), "distill": DEFAULTS["distill"]} == default_run


def test_the_default_has_no_extra_stream_and_adv_mode_turns_the_stream_on():
    """The default preset is the base alone; the second stream is one key away: score with adv_mode=clean trains
    exactly what score-stream trains (every effective setting but the name equal)."""
    default_run = resolve_distill_config({})
    assert (default_run["distill"], default_run["adv_mode"]) == ("score", "off")
    assert not adversarial_term_on(default_run)
    on = effective_settings(resolve_distill_config({"distill": "score", "adv_mode": "clean"}))
    assert {**on, "distill": "score-stream"} == effective_settings(resolve_distill_config({"distill": "score-stream"}))


def test_every_preset_sets_its_frequency_part_itself():
    """A preset names freq_mode, so what default.yaml says can never switch a preset's frequency part on or off."""
    from ikd_yolo.config import load_preset

    for name in preset_names():
        assert "freq_mode" in load_preset(name), name


def test_a_custom_yaml_with_only_kd_loss_has_no_frequency_part(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("kd_loss: mgd\n")
    cfg = resolve_distill_config({"distill": str(mine)})
    assert cfg["freq_mode"] == "off" and cfg["adv_weight"] == "auto" and cfg["kd_loss"] == "mgd"
    assert {**cfg, "distill": DEFAULTS["distill"]} == resolve_distill_config({"kd_loss": "mgd"})


def test_a_custom_yaml_trains_without_the_frequency_part(tmp_path, synthetic_data, teacher_pt):
    from helpers import train_kwargs
    from ikd_yolo import IKDTrainer

    mine = tmp_path / "mine.yaml"
    mine.write_text("kd_loss: mgd\n")
    trainer = IKDTrainer(overrides={"model": "yolo11n.yaml", "teacher": str(teacher_pt), "data": str(synthetic_data),
                                    "distill": str(mine), **train_kwargs(tmp_path, "mine")})
    assert trainer.freq_augment is None and trainer.distill["kd_loss"] == "mgd"
    assert trainer.streams == ()  # the default's: no extra stream


def test_a_custom_yaml_extends_a_preset(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("extends: ikd-fgd-full\nfreq_p: 0.25\n")
    cfg = resolve_distill_config({"distill": str(mine)})
    assert (cfg["freq_mode"], cfg["freq_p"], cfg["kd_loss"]) == ("spectral", 0.25, "fgd")
    assert {**cfg, "distill": "ikd-fgd-full"} == resolve_distill_config({"distill": "ikd-fgd-full", "freq_p": 0.25})
    assert resolve_distill_config({"distill": str(mine), "freq_p": 0.5})["freq_p"] == 0.5  # key=value still wins
    (tmp_path / "sub").mkdir()
    chained = tmp_path / "sub" / "more.yaml"
    chained.write_text("extends: ../mine.yaml\nkd_loss: mgd\n")  # a relative path is read next to the YAML
    cfg = resolve_distill_config({"distill": str(chained)})
    assert (cfg["freq_mode"], cfg["freq_p"], cfg["kd_loss"]) == ("spectral", 0.25, "mgd")


@pytest.mark.parametrize("text, message", [
    ("extends: ikd-fgd-ful\n", "extends='ikd-fgd-ful' is neither a preset nor a YAML file. Did you mean "
                               "'ikd-fgd-full'?"),
    ("extends: [fgd, mgd]\n", "extends: in distill YAML '{path}' must name one preset or YAML"),
    ("extends: absent.yaml\n", "extends YAML 'absent.yaml' not found"),
    ("extends: loop.yaml\n", "distill YAML '{dir}/loop.yaml' extends itself (loop.yaml -> loop.yaml)"),
    ("distill: ikd-fgd-full\n", "distill: in distill YAML '{path}' cannot choose a preset: to start from one, write "
                                "extends: ikd-fgd-full instead"),
    ("extend: fgd\n", "unknown key 'extend' in distill YAML '{path}'. Did you mean 'extends'?"),
])
def test_a_bad_extends_is_one_line(text, message, tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text(text)
    with pytest.raises(DistillConfigError) as e:
        resolve_distill_config({"distill": str(path)})
    assert message.format(path=path, dir=tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_adv_frac_zero_with_the_adversarial_term_on_is_refused():
    message = ("adv_frac=0 attacks no image: set adv_mode=off to turn the extra stream off, or adv_frac>0 to "
               "attack that fraction of each batch")
    for explicit in ({"distill": "score-stream", "adv_frac": 0}, {"distill": "ikd-mgd", "adv_frac": 0.0},
                     {"adv_mode": "clean", "adv_frac": 0, "weights": "fixed"}):
        with pytest.raises(DistillConfigError) as e:
            resolve_distill_config(explicit)
        assert str(e.value) == message
    for term_off in ({}, {"distill": "score-stream", "adv_weight": 0}, {"adv_steps": 0, "adv_mode": "online"},
                     {"distill": "fgd"}, {"distill": "ikd-fgd-freq"}):
        assert resolve_distill_config({**term_off, "adv_frac": 0})["adv_frac"] == 0


def test_extends_default_starts_from_default_yaml(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("extends: default\nkd_loss: fgd\n")
    assert resolve_distill_config({"distill": str(mine)}) == {**resolve_distill_config({"kd_loss": "fgd"}),
                                                              "distill": str(mine)}


@pytest.mark.parametrize("key, value, message", [
    ("adv_step_size", 2, "adv_step_size=2.0 must lie in [0, 1]"),  # 2 meant as 2/255
    ("adv_eps", 8, "adv_eps=8.0 must lie in [0, 1]"),
])
def test_attack_sizes_are_in_pixel_units(key, value, message):
    assert check_value(key, 1.0) == 1.0 and check_value(key, 0) == 0.0
    with pytest.raises(DistillConfigError, match=re.escape(message)):
        check_value(key, value)


def test_a_cfg_file_keeps_its_zero_weights_and_the_presets_and_measures_the_rest():
    from ikd_yolo.cfg_files import cfg_file_keys

    earlier = {"distill": "score-feat", "weights": "auto", "score_feat": 6.0, "score_cls": 0.0, "fgd_alpha": 0.3,
               "adv_weight": 0.0, "epochs": 3}
    assert cfg_file_keys(earlier, {}, "cfg=x") == {k: v for k, v in earlier.items() if k != "fgd_alpha"}
    assert cfg_file_keys(earlier, {"weights": "fixed"}, "cfg=x") == earlier  # numbers stay numbers
    kept = cfg_file_keys({**earlier, "distill": "ikd-score"}, {"score_box": 0.5}, "cfg=x")
    assert "score_feat" not in kept and kept["adv_weight"] == 0.0  # ikd-score's preset sets no weight
