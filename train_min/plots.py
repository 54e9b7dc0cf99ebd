"""Few-shot curves: balanced accuracy against shots per class, one line per row, one panel row per set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from train_min.evaluate import FEW_SHOT_KS


def few_shot_plot(result: dict[str, Any], path: Path) -> Path:
    """Two panels (logistic regression, class prototypes) for every evaluation set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from train_min.report import _rows

    agg = result["aggregate"]
    sets = list(result["sets"])
    rows = _rows(result)
    fig, axes = plt.subplots(len(sets), 2, figsize=(11, 3.6 * len(sets)), sharey="row", squeeze=False)
    for axrow, set_name in zip(axes, sets, strict=True):
        chance = result["chance"][set_name].get("lp_bal_acc")
        for ax, (kind, title) in zip(axrow, (("lp", "logistic regression"), ("proto", "class prototypes")),
                                     strict=True):
            for row in rows:
                stats = [agg[row["id"]][set_name].get(f"fs_{kind}_bal_acc@{k}") or {} for k in FEW_SHOT_KS]
                ks = [k for k, s in zip(FEW_SHOT_KS, stats, strict=True) if s.get("mean") is not None]
                means = [s["mean"] for s in stats if s.get("mean") is not None]
                stds = [s["std"] for s in stats if s.get("mean") is not None]
                if not ks:
                    continue
                style = {"linestyle": "--"} if row["kind"] != "trained" else {}
                name = " · ".join(x for x in (row["label"], row.get("tower") if row["kind"] == "trained" else None,
                                               row.get("finetune")) if x)
                ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=name, **style)
            if chance is not None:
                ax.axhline(chance, color="black", linestyle=":", linewidth=1, label="chance")
            ax.set_xscale("log", base=2)
            ax.set_xticks(list(FEW_SHOT_KS), [str(k) for k in FEW_SHOT_KS])
            ax.set_xlabel("images per class (k)")
            ax.set_title(f"{set_name}: few-shot, {title}", fontsize=10)
            ax.grid(alpha=0.3)
        axrow[0].set_ylabel("balanced accuracy")
    axes[0][1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
