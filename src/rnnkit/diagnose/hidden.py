"""Pictures of the hidden state of a character model, and units that track the text.

``hidden_trace`` runs a trained character LM over a passage and keeps every unit's value at
every character (``h_t`` and, for an LSTM, the cell state ``c_t``). ``text_features`` computes
simple features of the same passage (inside a string literal, position in the line, the line's
indentation, inside a comment, bracket depth); ``find_units`` correlates every unit with every
feature (Pearson's r over the passage), in the spirit of Karpathy, Johnson & Fei-Fei (2015),
"Visualizing and understanding recurrent networks". ``heatmap_png`` and ``heatmap_html`` colour
each character by a unit's value (blue negative, red positive).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.comma_lists import split_commas
from rnnkit.diagnose.states import reference_states
from rnnkit.plotting import pyplot

FEATURES = {
    "in_quotes": "inside a string literal ('...', \"...\", triple quotes)",
    "line_position": "characters since the start of the line",
    "indentation": "leading spaces of the current line",
    "in_comment": "inside a # comment",
    "bracket_depth": "nesting depth of (), [] and {}",
}


@dataclass
class Trace:
    text: str
    values: Tensor
    """``(T, U)``: every unit's value at every character."""
    names: list[str]
    """Unit names: ``h17`` (hidden state), ``c17`` (LSTM cell state)."""


def passage(text: str, length: int, at_line: bool = False) -> str:
    """The first ``length`` characters of ``text``; with ``at_line``, from after its first
    newline when one comes within 2000 characters, so the passage starts outside any string."""
    if at_line and "\n" in text[:2000]:
        text = text[text.index("\n") + 1 :]
    text = text[:length]
    if not text:
        raise ValueError("the passage is empty (check --offset and --length)")
    return text


def hidden_trace(model, vocab, text: str, layer: int = -1) -> Trace:
    """Run a ``ManyToMany`` character LM over ``text``; keep ``h`` (and ``c``) of ``layer``."""
    ids = vocab.encode(text)
    if ids.numel() != len(text):
        raise ValueError("the passage must be tokenised one character per token (a char model)")
    rnn = model.rnn
    k = layer % rnn.num_layers
    with torch.no_grad():
        _, states = reference_states(rnn, model.embedding(ids.unsqueeze(0)))
    d = 2 if rnn.bidirectional else 1
    first = states.steps[0][0]
    count = 1 if isinstance(first, Tensor) else len(first)  # h, or (h, c), or any cell's parts
    parts, names = [], []
    for part in range(count):
        values = states.stacked(part)[k * d, :, 0]  # (T, H)
        prefix = ("h", "c")[part] if part < 2 else f"s{part}_"
        parts.append(values)
        names += [f"{prefix}{i}" for i in range(values.size(1))]
    return Trace(text, torch.cat(parts, dim=1).float(), names)


def text_features(text: str) -> dict[str, Tensor]:
    """Per-character features of Python-like text (see ``FEATURES``), each ``(T,)`` float."""
    n = len(text)
    feats = {name: torch.zeros(n) for name in FEATURES}
    quote: str | None = None  # the open delimiter
    comment = False
    column = indent = depth = 0
    leading = True
    i = 0
    while i < n:
        ch = text[i]
        width = 1
        if quote is not None:
            if text.startswith(quote, i) and (i == 0 or text[i - 1] != "\\"):
                width = len(quote)
                end_quote = True
            else:
                end_quote = False
            inside = 1.0
        else:
            end_quote = False
            inside = 0.0
        for j in range(i, min(n, i + width)):
            feats["in_quotes"][j] = inside
            feats["in_comment"][j] = float(comment)
            feats["line_position"][j] = column + (j - i)
            feats["indentation"][j] = indent
            feats["bracket_depth"][j] = depth
        if end_quote:
            quote = None
        elif quote is None and not comment:
            if ch in "'\"":
                triple = ch * 3
                quote = triple if text.startswith(triple, i) else ch
                width = len(quote)
                for j in range(i, min(n, i + width)):
                    feats["in_quotes"][j] = 1.0
            elif ch == "#":
                comment = True
            elif ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth = max(0, depth - 1)
        if ch == "\n":
            column, indent, leading, comment = 0, 0, True, False
            if quote is not None and len(quote) == 1:
                quote = None  # an unterminated one-line string ends with its line
        else:
            column += width
            if leading and ch == " ":
                indent += 1
            else:
                leading = False
        i += width
    return feats


@dataclass
class UnitMatch:
    feature: str
    unit: int
    name: str
    r: float


def correlations(trace: Trace, feats: dict[str, Tensor]) -> dict[str, Tensor]:
    """Pearson's r of every unit with every feature: ``{feature: (U,)}`` (0 where constant)."""
    v = trace.values - trace.values.mean(0)
    v_norm = v.norm(dim=0)
    out = {}
    for name, f in feats.items():
        f = f - f.mean()
        denom = v_norm * f.norm()
        r = (v * f[:, None]).sum(0) / denom
        out[name] = torch.where(denom > 0, r, torch.zeros_like(r))
    return out


def find_units(trace: Trace, feats: dict[str, Tensor], top: int = 3) -> dict[str, list[UnitMatch]]:
    """The ``top`` units by |r| for each feature."""
    found = {}
    for name, r in correlations(trace, feats).items():
        order = r.abs().argsort(descending=True)[:top].tolist()
        found[name] = [UnitMatch(name, u, trace.names[u], float(r[u])) for u in order]
    return found


def _colour(value: float, scale: float) -> tuple[int, int, int]:
    """Blue for negative, white at zero, red for positive, saturating at ``scale``."""
    a = max(-1.0, min(1.0, value / scale)) if scale > 0 else 0.0
    if a >= 0:
        return 255, int(255 * (1 - a)), int(255 * (1 - a))
    return int(255 * (1 + a)), int(255 * (1 + a)), 255


def choose_units(
    trace: Trace, found: dict[str, list[UnitMatch]], units: str | list[int] = "auto"
) -> tuple[list[int], dict[int, str]]:
    """The units to draw and a note on each unit that tracks a feature.

    ``units``: "auto" (the best unit for each feature in ``found``, from ``find_units``), a
    list of unit indices, or the same written with commas (``"0,3"``).
    """
    notes: dict[int, str] = {}
    for feature, matches in found.items():
        best = matches[0]
        notes.setdefault(best.unit, f"tracks {feature} (r = {best.r:+.2f})")
    if units == "auto":
        return list(notes), notes
    if isinstance(units, str):
        try:
            units = [int(u) for u in split_commas(units)]
        except ValueError:
            raise ValueError(f"--units takes unit indices or auto, got {units!r}") from None
    bad = [u for u in units if not 0 <= u < len(trace.names)]
    if bad:
        raise ValueError(f"--units: {bad} out of range 0..{len(trace.names) - 1}")
    return list(units), notes


def heatmap_html(
    trace: Trace, units: list[int], out: str | Path, title: str = "", notes: dict | None = None
) -> Path:
    """A self-contained HTML page: the passage once per unit, each character coloured by the
    unit's value (hover for the number). Inline CSS only; no scripts, no external files."""
    out = Path(out)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8" />',
        f"<title>{html.escape(title or 'hidden units')}</title>",
        "<style>",
        "body { font-family: sans-serif; margin: 2em; }",
        "pre { font-family: monospace; font-size: 13px; line-height: 1.5; white-space: pre-wrap;"
        " border: 1px solid #ccc; padding: 0.5em; }",
        "pre span { padding: 1px 0; }",
        ".nl { color: #999; }",
        "</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title or 'hidden units')}</h1>",
        "<p>Each character is coloured by the unit's value after reading it: "
        '<span style="background: rgb(80,80,255)">negative</span> ... '
        '<span style="background: rgb(255,80,80)">positive</span>.</p>',
    ]
    for u in units:
        values = trace.values[:, u]
        scale = float(values.abs().max()) or 1.0
        note = (notes or {}).get(u, "")
        parts.append(
            f"<h2>unit {html.escape(trace.names[u])}"
            f"{' — ' + html.escape(note) if note else ''}</h2>"
        )
        spans = []
        for ch, v in zip(trace.text, values.tolist()):
            r, g, b = _colour(v, scale)
            shown = "↵\n" if ch == "\n" else ch
            spans.append(
                f'<span style="background: rgb({r},{g},{b})" title="{v:.3f}">'
                f"{html.escape(shown)}</span>"
            )
        parts.append("<pre>" + "".join(spans) + "</pre>")
    parts += ["</body>", "</html>", ""]
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def heatmap_png(
    trace: Trace,
    units: list[int],
    out: str | Path,
    *,
    width: int = 80,
    title: str = "",
    notes: dict | None = None,
) -> Path:
    """The passage as a character grid per unit, each cell coloured by the unit's value."""
    plt = pyplot("hidden-state heat maps")
    import numpy as np

    rows: list[list[tuple[str, int]]] = [[]]
    for i, ch in enumerate(trace.text):
        if len(rows[-1]) >= width:
            rows.append([])
        rows[-1].append(("↵" if ch == "\n" else ch, i))
        if ch == "\n":
            rows.append([])
    n_rows = len(rows)
    fig_h = 0.6 + len(units) * (0.5 + 0.16 * n_rows)
    fig, axes = plt.subplots(len(units), 1, figsize=(width * 0.11 + 0.5, fig_h), dpi=110)
    axes = np.atleast_1d(axes)
    for ax, u in zip(axes, units):
        values = trace.values[:, u].numpy()
        scale = float(np.abs(values).max()) or 1.0
        grid = np.full((n_rows, width), np.nan)
        for r, row in enumerate(rows):
            for c, (_, i) in enumerate(row):
                grid[r, c] = values[i]
        ax.imshow(grid, cmap="bwr", vmin=-scale, vmax=scale, aspect="auto", interpolation="none")
        for r, row in enumerate(rows):
            for c, (ch, _) in enumerate(row):
                if ch.strip():
                    ax.text(c, r, ch, ha="center", va="center", fontsize=6.5, family="monospace")
        note = (notes or {}).get(u, "")
        ax.set_title(f"unit {trace.names[u]}{'  ' + note if note else ''}", fontsize=9, loc="left")
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)
