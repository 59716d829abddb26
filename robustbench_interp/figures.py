"""Heatmaps before and after a manipulation, drawn as figures (the shape of Heo et al.'s Figure 2),
and the attacker's FSR versus budget (:func:`draw_budget`).

One PNG per (attack, model), ``fig_<attack>_<model>.png``, in the leaderboard's order of attacks and
models: a row per attacking interpreter (the main job's first, then by name), and for each of the
same few evaluation images the image, the original model's map and the manipulated model's map
(normalised with n(h), the benchmark's normalisation); an empty or constant map, never a success, is
labelled so on its panel. For Active fooling the maps of class c1 are shown: after a successful
manipulation they look like the original maps of c2.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from robustbench_interp.attacks import attack_order, get_attack, safe_name
from robustbench_interp.config import CellConfig
from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.metrics.heatmaps import constant_maps, normalize
from robustbench_interp.runner import Runner
from robustbench_interp.store import atomic_write_bytes

N_IMAGES = 3


def _display(h: Tensor, size: tuple[int, int]) -> Tensor:
    hn = normalize(h.float())[:, None]
    return F.interpolate(hn, size=size, mode="nearest")[:, 0]


def _cell_maps(bench: Runner, cfg: CellConfig) -> tuple[Tensor, Tensor, Tensor, str]:
    """The first evaluation images of a cell and their maps before and after the manipulation."""
    interp = get_interpreter(cfg.interpreter, **dict(cfg.interpreter_params))
    (_key, x, _target), *_ = bench.resources.eval_sets(cfg)
    (h0, h1), *_ = bench.resources.maps_before_after(cfg, interp, bench.manipulated(cfg), limit=N_IMAGES)
    what = f"class {cfg.classes[0]}" if get_attack(cfg.attack).two_classes else "true class"
    return x[:N_IMAGES], h0, h1, what


def _untrusted(cfg: CellConfig, trusted: Sequence[str]) -> list[str]:
    from robustbench_interp.attacks import ATTACKS
    from robustbench_interp.interpreters import INTERPRETERS
    from robustbench_interp.registry import untrusted_specs

    return untrusted_specs([cfg.interpreter, cfg.attack], [INTERPRETERS, ATTACKS], trusted)


def first_seeds(cells: Sequence[CellConfig]) -> list[CellConfig]:
    """The attacked cells of ``cells`` (controls have no maps of their own), one per (model, attack,
    interpreter): that of the lowest seed, so a figure keeps one row per cell whatever the seeds."""
    chosen: dict[tuple, CellConfig] = {}
    for cfg in sorted((c for c in cells if not c.is_control), key=lambda c: c.seed):
        chosen.setdefault((cfg.model, cfg.attack, cfg.interpreter, cfg.interpreter_params), cfg)
    return list(chosen.values())


def interpreter_order(names: Sequence[str]) -> list[str]:
    """The rows of a figure: the main job's attacking interpreters first, then the others by name."""
    from robustbench_interp.grid import RUN_ATTACKERS

    first = [n for n in RUN_ATTACKERS if n in names]
    return first + sorted(set(names) - set(first))


def model_order(names: Sequence[str]) -> list[str]:
    """The figures of an attack: standard models by name, each followed by its adversarially trained one."""
    return sorted(set(names), key=lambda m: (m.removesuffix("-adv"), m.endswith("-adv")))


def figure_path(out_dir: str | Path, attack: str, model: str) -> Path:
    """Where the figure of (``attack``, ``model``) goes under ``out_dir``."""
    return Path(out_dir) / f"fig_{safe_name(attack)}_{safe_name(model)}.png"


def draw_figures(bench: Runner, cells: Sequence[CellConfig], trusted: Sequence[str], out_dir: str | Path
                 ) -> dict[str, Path]:
    """Draw ``fig_<attack>_<model>.png`` under ``out_dir`` for the given (ok) cells; returns the
    written paths. A figure of the earlier layout (``fig_<attack>.png``) of a drawn attack is removed.

    The cells may come from stored records, which are data: a cell whose interpreter or attack is
    neither registered nor among the ``trusted`` specs (those given on this command line) is
    skipped with a message, and nothing it names is imported. Only adaptive maps are drawn, of the
    lowest seed of each cell; controls are left out.
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    written: dict[str, Path] = {}
    cells = first_seeds(cells)
    groups = [(attack, model) for attack in attack_order(c.attack for c in cells)
              for model in model_order([c.model for c in cells if c.attack == attack])]
    for attack, model in groups:
        group = [c for c in cells if c.attack == attack and c.model == model]
        order = interpreter_order([c.interpreter for c in group])
        group.sort(key=lambda c: (order.index(c.interpreter), c.interpreter_params))
        rows = []
        for cfg in group:
            untrusted = _untrusted(cfg, trusted)
            if untrusted:
                bench.log(f"figure: skipped {cfg.label}: {', '.join(map(repr, untrusted))} is neither registered nor "
                          "given on this command line, and a stored record's code is never imported")
                continue
            try:
                rows.append((cfg, *_cell_maps(bench, cfg)))
            except Exception as exc:  # noqa: BLE001 - a figure never breaks the run; the table has the numbers
                bench.log(f"figure: skipped {cfg.label}: {exc}")
        if not rows:
            continue
        ncols = 3 * N_IMAGES
        fig, axes = plt.subplots(len(rows), ncols, figsize=(1.3 * ncols, 1.45 * len(rows)), squeeze=False)
        for r, (cfg, x, h0, h1, what) in enumerate(rows):
            size = tuple(x.shape[-2:])
            d0, d1 = _display(h0, size), _display(h1, size)
            flat0, flat1 = constant_maps(h0), constant_maps(h1)
            for i in range(len(x)):
                panels = [(x[i].permute(1, 2, 0).clamp(0, 1).numpy(), None, "image", False),
                          (d0[i].numpy(), "jet", "original", bool(flat0[i])),
                          (d1[i].numpy(), "jet", "manipulated", bool(flat1[i]))]
                for j, (img, cmap, title, flat) in enumerate(panels):
                    ax = axes[r][3 * i + j]
                    ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if flat:  # an empty or constant map is never a success: say so on the panel
                        ax.text(0.5, 0.5, "empty" if not img.any() else "constant", color="white", fontsize=7,
                                ha="center", va="center", transform=ax.transAxes,
                                bbox={"facecolor": "black", "alpha": 0.6, "pad": 1})
                    if r == 0:
                        ax.set_title(title, fontsize=7)
            axes[r][0].set_ylabel(cfg.interpreter, fontsize=7)
        fig.suptitle(f"{group[0].track}, {model}: {attack} fooling through each interpreter, adaptive maps "
                     f"({rows[0][4]})", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))  # room for the title
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        path = figure_path(out, attack, model)
        atomic_write_bytes(path, buf.getvalue())
        written[path.name] = path
    for attack in {a for a, _m in groups}:  # the earlier layout's one figure per attack
        old = out / f"fig_{safe_name(attack)}.png"
        if old.exists() and any(name.startswith(f"fig_{safe_name(attack)}_") for name in written):
            old.unlink()
    return written


def draw_budget(curve: Any, path: str | Path) -> Path | None:
    """Draw FSR versus budget (SPEC section 9) into ``path``: one column per attack, one line per
    (model, attacking interpreter, search budget): the search's leader after each rung (mean over
    seeds) against the optimizer steps the search had spent; above its test FSR, below its mean
    test loss with the boundary of the success interval dashed. A line still rising (or, for the
    loss, still moving towards the boundary) at the right end says that more budget would fool
    more; a flat FSR of 0 over a loss that does not move says that more of this budget would not. ``curve`` is the
    leaderboard's ``budget.csv`` frame; nothing is drawn when it is empty."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robustbench_interp.attacks import ATTACKS

    if curve is None or len(curve) == 0:
        return None
    attacks = attack_order(curve["attack"].unique())
    has_loss = "test_loss" in curve and curve["test_loss"].notna().any()
    rows = 2 if has_loss else 1
    fig, axes = plt.subplots(rows, len(attacks), figsize=(3.4 * len(attacks), 2.8 * rows), squeeze=False)
    for col, attack in enumerate(attacks):
        part = curve[curve["attack"] == attack]
        agg = {"spent": ("spent", "mean"), "test_fsr": ("test_fsr", "mean")}
        if has_loss:
            agg["test_loss"] = ("test_loss", "mean")
        by = ["model", "interpreter", "budget"] if "budget" in part else ["model", "interpreter"]
        several = "budget" in part and part["budget"].nunique() > 1
        lines = part.groupby([*by, "rung"], as_index=False, dropna=False).agg(**agg)
        top = axes[0][col]
        for names, line in lines.groupby(by, dropna=False):
            line = line.sort_values("rung")
            label = f"{names[0]} / {names[1]}" + (f" (budget {names[2]:g})" if several else "")
            top.plot(line["spent"], line["test_fsr"], marker="o", markersize=3, label=label)
            if has_loss:
                axes[1][col].plot(line["spent"], line["test_loss"], marker="o", markersize=3)
        top.set_title(attack, fontsize=9)
        top.set_ylim(-2, 102)
        top.legend(fontsize=6)
        if has_loss:
            known = ATTACKS.get(attack) if attack in ATTACKS else None
            low, high = getattr(known, "success_interval", None) or (None, None)
            boundary = None if low is None else high if low <= 0 else low  # none for an attack not registered here
            if boundary is not None:
                axes[1][col].axhline(boundary, linestyle="--", color="grey", linewidth=0.8)
        for ax in axes[:, col]:
            ax.tick_params(labelsize=7)
        axes[-1][col].set_xlabel("optimizer steps spent", fontsize=8)
    axes[0][0].set_ylabel("test FSR of the leader (%)", fontsize=8)
    if has_loss:
        axes[1][0].set_ylabel("mean test loss (dashed: success boundary)", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    out = Path(path)
    atomic_write_bytes(out, buf.getvalue())
    return out
