"""Audio in: WAV files read with the standard library, log-mel features computed with torch."""

from rnnkit.audio.features import (
    AudioConfig,
    log_mel,
    mel_filterbank,
    read_wav,
    resolve_f_max,
    wav_rate,
)

__all__ = ["AudioConfig", "log_mel", "mel_filterbank", "read_wav", "resolve_f_max", "wav_rate"]
