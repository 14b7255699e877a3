"""WAV files to log-mel feature sequences, the usual input of a speech or sound classifier.

The recipe (the common one of speech recognition since the HTK book):

1. read the samples (PCM 8, 16, 24 or 32-bit integers, or 32/64-bit floats) and average the
   channels to mono;
2. cut frames of ``window_ms`` every ``hop_ms`` (25 ms every 10 ms), Hann-window each, and take
   the power spectrum with an FFT of the next power of two;
3. weight it with ``n_mels`` triangular filters spaced evenly on the mel scale,
   ``mel(f) = 2595 log10(1 + f / 700)``, from ``f_min`` to ``f_max``;
4. take ``log(energy + 1e-6)``.

Window and filters are set in milliseconds and hertz, so files of different sample rates give
comparable features (``f_max`` must not exceed half the lowest rate; by default it is 8000 Hz or
half the lowest rate of the training files, fixed once for the run). The classifier then
standardises every feature with the mean and spread of the training set.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

DEFAULT_F_MAX = 8000.0
"""The top of the mel range when none is given: the Nyquist frequency of 16 kHz speech."""


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

    f_max: float | None = None
    """Highest filter edge in Hz, at most half the sample rate (default: 8000, or half the
    lowest sample rate of the training files when that is lower)."""

    def __post_init__(self) -> None:
        if self.n_mels < 1:
            raise ValueError(f"--n-mels must be positive; got {self.n_mels}")
        if not 0 < self.hop_ms <= self.window_ms:
            raise ValueError(
                f"--hop-ms must be in (0, --window-ms]; got {self.hop_ms} and {self.window_ms}"
            )
        if not 0 <= self.f_min < (DEFAULT_F_MAX if self.f_max is None else self.f_max):
            raise ValueError(f"--f-min must be below --f-max; got {self.f_min}, {self.f_max}")


_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def _chunks(f, path) -> dict[bytes, tuple[int, int]]:
    """The RIFF chunks of an open WAV file: id -> (offset of its body, size), bodies unread."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioError(f"cannot read {path}: not a RIFF WAVE file")
    found: dict[bytes, tuple[int, int]] = {}
    while True:
        header = f.read(8)
        if len(header) < 8:
            return found
        cid, size = header[:4], int.from_bytes(header[4:], "little")
        found.setdefault(cid, (f.tell(), size))
        if cid == b"data":  # a streamed file may give a wrong size: nothing follows its data
            return found
        f.seek(size + (size & 1), 1)  # chunks are padded to an even length


def _format(f, chunks, path) -> tuple[int, int, int, int]:
    """(format tag, channels, sample rate, bytes per sample) from the ``fmt `` chunk; the tag
    of a WAVE_FORMAT_EXTENSIBLE file is its sub-format's."""
    if b"fmt " not in chunks:
        raise AudioError(f"cannot read {path}: no 'fmt ' chunk")
    offset, size = chunks[b"fmt "]
    f.seek(offset)
    body = f.read(size)
    if len(body) < 16:
        raise AudioError(f"cannot read {path}: its 'fmt ' chunk is cut short")
    tag, channels = int.from_bytes(body[:2], "little"), int.from_bytes(body[2:4], "little")
    rate = int.from_bytes(body[4:8], "little")
    block_align = int.from_bytes(body[12:14], "little")
    if tag == _EXTENSIBLE:
        if len(body) < 26:
            raise AudioError(f"cannot read {path}: an extensible 'fmt ' chunk without sub-format")
        tag = int.from_bytes(body[24:26], "little")  # the GUID's first two bytes
    if channels < 1 or rate < 1 or block_align < channels or block_align % channels:
        raise AudioError(
            f"cannot read {path}: {channels} channels, {rate} Hz, {block_align} bytes a frame"
        )
    return tag, channels, rate, block_align // channels


def wav_rate(path: str | Path) -> int:
    """A WAV file's sample rate, read from its header alone."""
    try:
        with open(path, "rb") as f:
            return _format(f, _chunks(f, path), path)[2]
    except OSError as e:
        raise AudioError(f"cannot read {path}: {e}") from e


def read_wav(path: str | Path) -> tuple[Tensor, int]:
    """A WAV file's samples as a mono float32 tensor, and its sample rate.

    Reads PCM (8-bit unsigned; 16, 24 and 32-bit signed) and IEEE float (32 and 64-bit), plain
    or WAVE_FORMAT_EXTENSIBLE, any number of channels (averaged to mono). Integers are scaled
    to [-1, 1); floats are taken as written (full scale is 1.0).
    """
    try:
        with open(path, "rb") as f:
            chunks = _chunks(f, path)
            tag, channels, rate, width = _format(f, chunks, path)
            if b"data" not in chunks:
                raise AudioError(f"cannot read {path}: no 'data' chunk")
            offset, size = chunks[b"data"]
            f.seek(offset)
            raw = f.read(size)
    except OSError as e:
        raise AudioError(f"cannot read {path}: {e}") from e
    raw = raw[: len(raw) - len(raw) % (width * channels)]  # whole frames of a cut-short file
    if tag == _PCM and width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif tag == _PCM and width in (2, 4):
        samples = np.frombuffer(raw, f"<i{width}").astype(np.float64) / 2 ** (8 * width - 1)
    elif tag == _PCM and width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        samples = (np.where(ints >= 2**23, ints - 2**24, ints)).astype(np.float32) / 2**23
    elif tag == _FLOAT and width in (4, 8):
        samples = np.frombuffer(raw, f"<f{width}")
        if not np.isfinite(samples).all():
            raise AudioError(f"{path}: holds NaN or infinite samples")
    elif tag in (_PCM, _FLOAT):
        kind = "PCM" if tag == _PCM else "float"
        raise AudioError(f"{path}: {8 * width}-bit {kind} samples are not supported")
    else:
        raise AudioError(
            f"{path}: WAV format {tag:#06x} is not supported (PCM 8/16/24/32-bit and float "
            "32/64-bit are; convert it, e.g. with sox or ffmpeg)"
        )
    if samples.size == 0:
        raise AudioError(f"{path} holds no samples")
    samples = samples.reshape(-1, channels).mean(1).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(samples)), rate


def _f_max(cfg: AudioConfig, rate: float) -> float:
    """The top of the mel range: the given ``f_max``, else 8000 Hz capped at Nyquist."""
    return cfg.f_max if cfg.f_max is not None else min(DEFAULT_F_MAX, rate / 2)


def resolve_f_max(cfg: AudioConfig, rates: list[int]) -> tuple[AudioConfig, str]:
    """``cfg`` with its mel range's top fixed for a data set of these sample ``rates``: the
    given ``f_max``, else 8000 Hz, or half the lowest rate when that is lower (every file then
    has the same bands, whatever its rate); and a note when the lowest rate lowered it."""
    if cfg.f_max is not None or not rates:
        return cfg, ""
    lowest = min(rates)
    f_max = _f_max(cfg, lowest)
    note = (
        f"--f-max {f_max:g} Hz: half the lowest sample rate ({lowest} Hz) of the files"
        if f_max < DEFAULT_F_MAX
        else ""
    )
    return dataclasses.replace(cfg, f_max=f_max), note


def _mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _hz(m):
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def mel_filterbank(rate: int, n_fft: int, cfg: AudioConfig) -> Tensor:
    """``(n_fft // 2 + 1, n_mels)`` triangular filters on the mel scale (``f_max`` None: 8000
    Hz or half the ``rate``, whichever is lower)."""
    f_max = _f_max(cfg, rate)
    return _mel_filters(rate, n_fft, cfg.f_min, f_max, cfg.n_mels).clone()


# every file of a data set at one rate needs the same filters and window: built once, and never
# written to (log_mel only reads them; mel_filterbank hands out a copy)
@functools.lru_cache(maxsize=16)
def _mel_filters(rate: int, n_fft: int, f_min: float, f_max: float, n_mels: int) -> Tensor:
    if f_max > rate / 2:
        raise AudioError(
            f"--f-max {f_max:g} Hz is above half the sample rate ({rate} Hz), the highest "
            "frequency the file holds; lower --f-max when training (a trained model's bands "
            f"are fixed: resample the file to at least {2 * f_max:g} Hz)"
        )
    if f_min >= f_max:
        raise AudioError(f"--f-min {f_min:g} Hz must be below --f-max {f_max:g} Hz")
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
    f_max = _f_max(cfg, rate)
    try:
        bank = _mel_filters(rate, n_fft, cfg.f_min, f_max, cfg.n_mels)
    except AudioError as e:
        raise AudioError(f"{name}: {e}") from None
    return torch.log(power @ bank + 1e-6)
