"""Fine-tuning schedules of ULMFiT (Howard and Ruder 2018, section 3.2-3.3): layer groups,
discriminative learning rates, the slanted triangular schedule and gradual unfreezing.

A model is cut into ``layer_groups``, bottom (embedding) to top (head). Each group trains with
its own learning rate, the top one at the full rate and each one below ``decay`` times slower
(``discriminative_scales``: the lower layers hold general features that should move less;
ULMFiT uses 2.6). The rate rises linearly for the first ``cut`` of training and then falls
linearly, from ``lr / ratio`` to ``lr`` and back (``slanted_triangular``). With gradual
unfreezing only the top group trains at first, and one more group below joins every ``every``
steps (``trainable_from``), so that the new head does not wreck the pretrained layers.

The trainer reads two things from a task: ``param_groups`` (each with an ``lr_scale``) when it
builds the optimiser, and ``before_step`` (the rate of a step, and which groups train).
"""

from __future__ import annotations

from torch import nn

from rnnkit.layers.build import layer_parameters


def slanted_triangular(progress: float, cut_frac: float = 0.1, ratio: float = 32.0) -> float:
    """The learning-rate factor at ``progress`` (0 to 1) of training, ULMFiT's eq. (3).

    ``p = progress / cut_frac`` while rising, ``1 - (progress - cut_frac) / (1 - cut_frac)``
    after; the factor is ``(1 + p (ratio - 1)) / ratio``: ``1 / ratio`` at both ends, 1 at the
    peak.
    """
    if not 0 < cut_frac < 1:
        raise ValueError(f"--slanted-cut must lie in (0, 1), got {cut_frac}")
    if ratio < 1:
        raise ValueError(f"--slanted-ratio must be >= 1, got {ratio}")
    progress = min(max(progress, 0.0), 1.0)
    rising = progress < cut_frac
    p = progress / cut_frac if rising else 1 - (progress - cut_frac) / (1 - cut_frac)
    return (1 + p * (ratio - 1)) / ratio


def discriminative_scales(n_groups: int, decay: float) -> list[float]:
    """Learning-rate factors of ``n_groups`` groups, bottom to top: ``decay ** -(depth)``, the
    top group 1 (ULMFiT eq. (2), ``eta_{l-1} = eta_l / 2.6``)."""
    if decay < 1:
        raise ValueError(f"--lr-decay must be >= 1 (1: one rate for all), got {decay}")
    return [decay ** -(n_groups - 1 - i) for i in range(n_groups)]


def trainable_from(step: int, n_groups: int, every: int) -> int:
    """The lowest group that trains at ``step`` under gradual unfreezing: the top group alone
    for the first ``every`` steps, then one more each ``every`` steps (``every`` 0: all)."""
    if every <= 0:
        return 0
    return max(n_groups - 1 - step // every, 0)


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """A token model's parameters in groups, bottom to top: the embedding, each recurrent
    layer (``rnnkit.layers.build.layer_parameters``: torch's layout or the unrolled one), then
    everything else (pooling, head). Groups that would be empty are left out."""
    embedding = list(model.embedding.parameters()) if model.embedding is not None else []
    by_layer: dict[int, list[nn.Parameter]] = {}
    # by layer in either layout (torch's weight_hh_l1, or the unrolled loop's cells.2)
    for (layer, _, _), p in layer_parameters(model.rnn).items():
        by_layer.setdefault(layer, []).append(p)
    seen = {id(p) for p in embedding} | {id(p) for ps in by_layer.values() for p in ps}
    top = [p for p in model.parameters() if id(p) not in seen]
    groups = [embedding, *(by_layer[k] for k in sorted(by_layer)), top]
    return [g for g in groups if g]


def set_trainable(groups: list[list[nn.Parameter]], lowest: int) -> None:
    """Groups ``lowest`` and above train; those below are frozen (no gradient, no update)."""
    for i, group in enumerate(groups):
        for p in group:
            p.requires_grad_(i >= lowest)
