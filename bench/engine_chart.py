"""docs/bench-engine.png: encode and count MB/s per peer and cell, from the same run as the tables.

    draw(run, Path("docs/bench-engine.png"))
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["draw"]

_SHORT = {"cl100k_base": "cl100k", "o200k_base": "o200k"}
_TOKEND = "#d62728"  # tokend's bars: red with a black edge; the peers take the other colours
_PEER_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")


def draw(run, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.engine import ENCODINGS, KINDS

    cells = [(encoding, kind) for encoding in ENCODINGS for kind in KINDS]
    peers = [key for key in run.peers if key not in run.unavailable]
    figure, axes = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    width = 0.8 / max(len(peers), 1)
    for axis, operation in zip(axes, ("encode", "count")):
        others = iter(_PEER_COLOURS)
        for index, key in enumerate(peers):
            values = [run.median_rate(encoding, kind, operation, key) or 0.0 for encoding, kind in cells]
            positions = [cell + (index - (len(peers) - 1) / 2) * width for cell in range(len(cells))]
            bars = axis.bar(positions, values, width, label=run.labels.get(key, key),
                            color=_TOKEND if key == "tokend" else next(others, None), zorder=3)
            if key == "tokend":
                for bar in bars:
                    bar.set_edgecolor("black")
        axis.set_ylabel(f"{operation}, MB/s")
        axis.grid(axis="y", alpha=0.3, zorder=0)
    axes[-1].set_xticks(range(len(cells)))
    axes[-1].set_xticklabels([f"{_SHORT[encoding]}\n{kind}" for encoding, kind in cells])
    figure.legend(*axes[0].get_legend_handles_labels(), ncol=min(len(peers), 7), fontsize=8, loc="upper center",
                  bbox_to_anchor=(0.5, 0.955), frameon=False)
    figure.suptitle(f"One thread, first pass over unseen text (median of {run.rounds} rounds, {run.started}; "
                    "shared 2-core machine)", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
