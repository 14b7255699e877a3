"""Drawing attention weights as a heat map: output steps down, source steps across."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from rnnkit.plotting import pyplot


def plot_attention(
    weights: Tensor,
    source_tokens: list[str],
    output_tokens: list[str],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Write the weights ``(T_out, S)`` of one decoded example as a PNG; return its path."""
    plt = pyplot("attention heat maps")
    w = weights.detach().float().cpu().numpy()
    rows, cols = w.shape
    fig, ax = plt.subplots(figsize=(1.5 + 0.45 * cols, 1.2 + 0.4 * rows))
    image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols), source_tokens[:cols])
    ax.set_yticks(range(rows), output_tokens[:rows])
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
