"""Model configs checked before Ultralytics builds them: a `model=x.yaml`, or the `yaml` dict a checkpoint's model
carries (Ultralytics rebuilds the student from it when training starts or resumes).

Ultralytics' `parse_model` runs a config's `activation` string through `eval` and looks each layer's module name up
in its module's namespace, then calls what it found with the layer's arguments: a crafted config therefore runs code
(`activation: __import__('os').system(...)`) or calls any function of that namespace (`check_requirements`, a
download). Accepted here is the shape Ultralytics' own configs have: the activation one torch.nn activation class
called with plain values (`nn.SiLU()`, `torch.nn.LeakyReLU(0.1)`), every module a layer class (an nn.Module)
Ultralytics or torch defines, every argument a plain value. Nothing is evaluated to check it.
"""

from __future__ import annotations

import ast
from typing import Any

from torch import nn
from torch.nn.modules import activation

from .file_values import MAX_VALUES, expanded_size, shown

ACTIVATIONS = frozenset({*activation.__all__, "Identity"})  # the classes an `activation:` may name
ACTIVATION_HINT = "a torch.nn activation called with plain values, e.g. nn.SiLU() or nn.LeakyReLU(0.1)"
SHOWN = 60  # characters of a refused value quoted in the message


def config_problem(cfg: Any) -> str | None:
    """None for a model config Ultralytics builds without running anything taken from it, else what is wrong, as a
    clause ("its activation '...' is not ...")."""
    if not isinstance(cfg, dict):
        return f"its model config is a {type(cfg).__name__}, not a mapping"
    if expanded_size(cfg) > MAX_VALUES:  # YAML aliases (or a pickle's shared objects) nested to blow up
        return f"its model config holds more than {MAX_VALUES} values once its shared parts are expanded"
    act = cfg.get("activation")
    if act and not _plain_activation(act):
        return f"its activation {_shown(act)} is not {ACTIVATION_HINT}"
    layers = [layer for part in ("backbone", "head") for layer in (cfg.get(part) or [])]
    if not isinstance(cfg.get("head"), list) or not cfg["head"] or not isinstance(cfg.get("backbone", []), list):
        return "its model config has no backbone and head lists"
    for i, layer in enumerate(layers):
        if not isinstance(layer, (list, tuple)) or len(layer) != 4:
            return f"its layer {i} is {_shown(layer)}, not [from, repeats, module, args]"
        _, _, module, args = layer
        if not isinstance(module, str) or layer_class(module) is None:
            return f"its layer {i} names {_shown(module)}, which is not a layer of Ultralytics or torch"
        if not isinstance(args, (list, tuple)) or not all(_plain(a) for a in args):
            return f"its layer {i} ({module}) has arguments that are not plain values: {_shown(args)}"
    return None


def layer_class(name: str) -> type[nn.Module] | None:
    """The layer class `name` means to Ultralytics' `parse_model` (nn.X, torchvision.ops.X, or a name of its module's
    namespace), or None when that is not an nn.Module class."""
    import torchvision
    from ultralytics.nn import tasks

    if name.startswith("nn."):
        found = getattr(nn, name[3:], None)
    elif name.startswith("torchvision.ops."):
        found = getattr(torchvision.ops, name[16:], None)
    else:
        found = vars(tasks).get(name)
    return found if isinstance(found, type) and issubclass(found, nn.Module) else None


def _plain_activation(text: Any) -> bool:
    """Whether `text` is `nn.<activation>(...)` or `torch.nn.<activation>(...)` with plain values only."""
    if not isinstance(text, str):
        return False
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return False
    if not isinstance(call, ast.Call) or ast.unparse(call.func) not in {
            f"{prefix}{name}" for prefix in ("nn.", "torch.nn.") for name in ACTIVATIONS}:
        return False
    try:
        for node in (*call.args, *(k.value for k in call.keywords)):
            ast.literal_eval(node)
    except (ValueError, TypeError):
        return False
    return all(k.arg is not None for k in call.keywords)  # no **kwargs


def _plain(value: Any) -> bool:
    """Whether `value` is a plain value: a number, string, bool or None, or a list / dict of them."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _shown(value: Any) -> str:
    text = shown(value)
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}..."
