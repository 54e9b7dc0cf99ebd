"""Few-shot curves: balanced accuracy against shots per class, one line per strategy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from train_min.evaluate import FEW_SHOT_KS


def few_shot_plot(result: dict[str, Any], path: Path) -> Path:
    """Two panels (logistic regression, class prototypes) for the main evaluation set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = result["main_set"]
    agg = result["aggregate"]
    chance = result["chance"][main].get("lp_bal_acc")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (kind, title) in zip(axes, (("lp", "logistic regression"), ("proto", "class prototypes")), strict=True):
        for name in [*result["strategies"], "untrained"]:
            stats = [agg[name][main].get(f"fs_{kind}_bal_acc@{k}") or {} for k in FEW_SHOT_KS]
            ks = [k for k, s in zip(FEW_SHOT_KS, stats, strict=True) if s.get("mean") is not None]
            means = [s["mean"] for s in stats if s.get("mean") is not None]
            stds = [s["std"] for s in stats if s.get("mean") is not None]
            style = {"linestyle": "--", "color": "grey"} if name == "untrained" else {}
            ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=name, **style)
        if chance is not None:
            ax.axhline(chance, color="black", linestyle=":", linewidth=1, label="chance")
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(FEW_SHOT_KS), [str(k) for k in FEW_SHOT_KS])
        ax.set_xlabel("training images per class (k)")
        ax.set_title(f"few-shot, {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"balanced accuracy ({main})")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
