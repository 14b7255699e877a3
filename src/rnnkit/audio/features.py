"""WAV files to log-mel feature sequences, the usual input of a speech or sound classifier.

The recipe (the common one of speech recognition since the HTK book):

1. read the PCM samples (8, 16, 24 or 32 bit integer) and average the channels to mono;
2. cut frames of ``window_ms`` every ``hop_ms`` (25 ms every 10 ms), Hann-window each, and take
   the power spectrum with an FFT of the next power of two;
3. weight it with ``n_mels`` triangular filters spaced evenly on the mel scale,
   ``mel(f) = 2595 log10(1 + f / 700)``, from ``f_min`` to ``f_max``;
4. take ``log(energy + 1e-6)``.

Window and filters are set in milliseconds and hertz, so files of different sample rates give
comparable features (``f_max`` must not exceed half the lowest rate). The classifier then
standardises every feature with the mean and spread of the training set.
"""

from __future__ import annotations

import functools
import math
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


class AudioError(ValueError):
    """A WAV file is unreadable or unsuitable."""


@dataclass(kw_only=True)
class AudioConfig:
    """How WAV files become feature sequences."""

    n_mels: int = 40
    """Mel bands per frame (the features per step)."""

    window_ms: float = 25.0
    """Frame length in milliseconds."""

    hop_ms: float = 10.0
    """Step between frames in milliseconds."""

    f_min: float = 0.0
    """Lowest filter edge in Hz."""

    f_max: float = 8000.0
    """Highest filter edge in Hz (at most half the sample rate)."""

    def __post_init__(self) -> None:
        if self.n_mels < 1:
            raise ValueError(f"--n-mels must be positive; got {self.n_mels}")
        if not 0 < self.hop_ms <= self.window_ms:
            raise ValueError(
                f"--hop-ms must be in (0, --window-ms]; got {self.hop_ms} and {self.window_ms}"
            )
        if not 0 <= self.f_min < self.f_max:
            raise ValueError(f"--f-min must be below --f-max; got {self.f_min}, {self.f_max}")


def read_wav(path: str | Path) -> tuple[Tensor, int]:
    """A WAV file's samples as a mono float32 tensor in [-1, 1], and its sample rate."""
    try:
        with wave.open(str(path), "rb") as f:
            rate, width, channels = f.getframerate(), f.getsampwidth(), f.getnchannels()
            raw = f.readframes(f.getnframes())
    except (wave.Error, EOFError, OSError) as e:
        raise AudioError(f"cannot read {path} as a PCM WAV file: {e}") from e
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 2:
        samples = np.frombuffer(raw, "<i2").astype(np.float32) / 2**15
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        samples = (np.where(ints >= 2**23, ints - 2**24, ints)).astype(np.float32) / 2**23
    elif width == 4:
        samples = np.frombuffer(raw, "<i4").astype(np.float32) / 2**31
    else:  # pragma: no cover - the wave module accepts only 1-4 bytes
        raise AudioError(f"{path}: {8 * width}-bit samples are not supported")
    if samples.size == 0:
        raise AudioError(f"{path} holds no samples")
    samples = samples[: samples.size - samples.size % channels].reshape(-1, channels).mean(1)
    return torch.from_numpy(np.ascontiguousarray(samples)), rate


def _mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _hz(m):
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def mel_filterbank(rate: int, n_fft: int, cfg: AudioConfig) -> Tensor:
    """``(n_fft // 2 + 1, n_mels)`` triangular filters on the mel scale."""
    return _mel_filters(rate, n_fft, cfg.f_min, cfg.f_max, cfg.n_mels).clone()


# every file of a data set at one rate needs the same filters and window: built once, and never
# written to (log_mel only reads them; mel_filterbank hands out a copy)
@functools.lru_cache(maxsize=16)
def _mel_filters(rate: int, n_fft: int, f_min: float, f_max: float, n_mels: int) -> Tensor:
    if f_max > rate / 2:
        raise AudioError(
            f"--f-max {f_max:g} Hz is above half the sample rate ({rate} Hz); lower --f-max"
        )
    edges = _hz(np.linspace(_mel(f_min), _mel(f_max), n_mels + 2))
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs[:, None] - lower) / (centre - lower)
    falling = (upper - freqs[:, None]) / (upper - centre)
    return torch.from_numpy(np.maximum(0, np.minimum(rising, falling)).astype(np.float32))


@functools.lru_cache(maxsize=16)
def _hann(window: int, dtype: torch.dtype) -> Tensor:
    return torch.hann_window(window, periodic=False, dtype=dtype)


def log_mel(
    samples: Tensor, rate: int, cfg: AudioConfig | None = None, *, name: str = "the sound"
) -> Tensor:
    """``(T, n_mels)`` log-mel energies of mono ``samples`` at ``rate`` Hz (``name`` says which
    file, in errors)."""
    cfg = cfg or AudioConfig()
    window = max(1, round(rate * cfg.window_ms / 1000))
    hop = max(1, round(rate * cfg.hop_ms / 1000))
    n_fft = 2 ** math.ceil(math.log2(window))
    if samples.numel() < window:
        raise AudioError(
            f"{name} is shorter ({samples.numel()} samples) than one {cfg.window_ms:g} ms window "
            f"({window} samples at {rate} Hz)"
        )
    frames = samples.unfold(0, window, hop) * _hann(window, torch.get_default_dtype())
    power = torch.fft.rfft(frames, n=n_fft).abs().pow(2)  # (T, n_fft/2 + 1)
    try:
        bank = _mel_filters(rate, n_fft, cfg.f_min, cfg.f_max, cfg.n_mels)
    except AudioError as e:
        raise AudioError(f"{name}: {e}") from None
    return torch.log(power @ bank + 1e-6)
