"""Many-to-one and aligned many-to-many: models, data readers, audio features, the classify and
tag tasks end to end (library and CLI), metrics, and bad input."""

from __future__ import annotations

import csv
import json
import random
import struct
import wave

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.architectures import ManyToMany, ManyToOne
from rnnkit.audio import AudioConfig, log_mel, mel_filterbank, read_wav, resolve_f_max
from rnnkit.audio.features import AudioError
from rnnkit.cli.main import main
from rnnkit.datasets.classification_sets import split_indices
from rnnkit.datasets.labelled import Columns, LabelledDataError, load_labelled
from rnnkit.tasks.classify.inputs import InputEncoder
from rnnkit.tasks.classify.metrics import classification_report, majority_baseline
from rnnkit.tasks.classify.run import (
    evaluate_run,
    predict,
    read_inputs,
    read_splits,
    train_classify,
)
from rnnkit.tasks.classify.task import ClassifyDataConfig, ClassifyModelConfig
from rnnkit.text.tokens import TokenVocab, tokenize
from rnnkit.training.config import TrainConfig

CELLS = ["rnn", "lstm", "gru", rnnkit.LayerNormLSTMCell]
POOLINGS = ["last", "mean", "max", "attention"]


# -- models ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c if isinstance(c, str) else c.__name__)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_padding_never_changes_the_answer(cell, bidirectional, pooling):
    torch.manual_seed(0)
    model = ManyToOne(
        3,
        vocab_size=20,
        embedding_size=8,
        hidden_size=6,
        num_layers=2,
        cell=cell,
        bidirectional=bidirectional,
        pooling=pooling,
    ).eval()
    x = torch.randint(1, 20, (4, 7))
    lengths = torch.tensor([7, 3, 1, 5])
    out = model(x, lengths=lengths)
    longer = torch.cat([x, torch.randint(1, 20, (4, 6))], dim=1)  # junk, not even zeros
    torch.testing.assert_close(model(longer, lengths=lengths), out, rtol=0, atol=1e-6)
    for row in range(4):  # each sequence alone, with no padding at all
        alone = model(x[row : row + 1, : lengths[row]])
        torch.testing.assert_close(alone, out[row : row + 1], rtol=0, atol=1e-6)


def test_pooling_reads_the_right_steps():
    torch.manual_seed(0)
    model = ManyToOne(2, input_size=3, hidden_size=4, cell="gru", bidirectional=True).eval()
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 2])
    y, h_n = model.rnn(x, lengths=lengths)
    # "last" is the final hidden state of both directions: h_n of the top layer
    expected = torch.cat([h_n[0], h_n[1]], dim=-1)
    torch.testing.assert_close(model.summarize(x, lengths), expected)
    model.pooling = "mean"
    torch.testing.assert_close(model.summarize(x, lengths)[1], y[1, :2].mean(0))
    model.pooling = "max"
    torch.testing.assert_close(model.summarize(x, lengths)[1], y[1, :2].amax(0))


def test_attention_weights_sum_to_one_and_skip_padding():
    torch.manual_seed(0)
    model = ManyToOne(2, vocab_size=10, hidden_size=8, pooling="attention").eval()
    weights = model.attention_weights(torch.randint(1, 10, (3, 6)), torch.tensor([6, 4, 1]))
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert (weights[1, 4:] == 0).all() and (weights[2, 1:] == 0).all()
    assert (weights[0] > 0).all()
    with pytest.raises(ValueError, match="not attention"):
        ManyToOne(2, vocab_size=10, pooling="max").attention_weights(torch.ones(1, 2).long())


def test_model_arguments_are_checked():
    with pytest.raises(ValueError, match="exactly one"):
        ManyToOne(2, vocab_size=3, input_size=3)
    with pytest.raises(ValueError, match="--pooling"):
        ManyToOne(2, vocab_size=3, pooling="sum")
    with pytest.raises(ValueError, match="--pooling"):
        ClassifyModelConfig(pooling="sum")
    with pytest.raises(ValueError, match="--split"):
        ClassifyDataConfig(data="x", split_fractions="0.5,0.6,0.1")


def test_many_to_many_takes_a_custom_cell():
    model = ManyToMany(5, input_size=3, hidden_size=4, cell=rnnkit.LayerNormLSTMCell)
    out, _ = model(torch.randn(2, 7, 3))
    assert out.shape == (2, 7, 5)


# -- vocabularies ---------------------------------------------------------------------------------
def test_word_and_character_vocabularies_round_trip():
    texts = ["The film is good.", "A bad, bad film!", "good acting"]
    words = TokenVocab.build(texts, "word")
    assert tokenize("Isn't it GOOD?", "word") == ["isn't", "it", "good", "?"]
    assert words.decode(words.encode("a bad film")) == "a bad film"
    assert words.encode("a terrible film") == [
        words.encode("a")[0],
        words.unk_id,
        words.encode("film")[0],
    ]
    assert words.tokens[4:6] == ["film", "good"]  # the most frequent first, ties in order seen
    chars = TokenVocab.build(texts, "char")
    assert chars.decode(chars.encode("bad film")) == "bad film"
    assert chars.decode(chars.encode("xyz", bos=True, eos=True)) == "<unk>" * 3
    capped = TokenVocab.build(texts, "word", max_size=6)
    assert len(capped) == 6 and capped.encode("acting") == [capped.unk_id]
    for vocab in (words, chars, capped):
        again = TokenVocab.from_json(json.loads(json.dumps(vocab.to_json())))
        assert again == vocab and again.encode("good film") == vocab.encode("good film")
    with pytest.raises(ValueError, match="--max-vocab"):
        TokenVocab.build(texts, max_size=3)


def test_a_tagging_vocabulary_keeps_tokens_whole():
    sentences = [["New York", "is", "big"], ["York", "is", "old"], ["is", "it", "big"]]
    encoder = InputEncoder.fit(
        "tokens", sentences, level="word", max_vocab=None, min_count=1, max_length=10
    )
    vocab = encoder.vocab
    assert "New York" in vocab and "New" not in vocab
    assert vocab.unk_id not in encoder.encode(["New York", "is", "old"]).tolist()
    assert encoder.encode(["New", "York"]).tolist() == [vocab.unk_id, vocab.encode("York")[0]]
    # for tokens without spaces, the vocabulary is the one of the text written out
    plain = [["b", "a", "c", "a"], ["c", "d", "a"], ["e", "b"]]
    for kwargs in ({}, {"max_size": 6}, {"min_count": 2}):
        assert TokenVocab.from_tokens(plain, **kwargs) == TokenVocab.build(
            [" ".join(t) for t in plain], "space", **kwargs
        )


# -- audio ----------------------------------------------------------------------------------------
def write_wav(path, samples: np.ndarray, rate: int = 16000, width: int = 2, channels: int = 1):
    scale = {1: 127, 2: 32767, 3: 2**23 - 1, 4: 2**31 - 1}[width]
    ints = np.round(np.clip(samples, -1, 1) * scale).astype(np.int64)
    if channels == 2:
        ints = np.stack([ints, ints], axis=1).reshape(-1)
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    elif width == 3:
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    else:
        raw = ints.astype({2: "<i2", 4: "<i4"}[width]).tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(raw)


def tone(freq: float, seconds: float = 0.5, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_wav_reading_at_every_sample_width(tmp_path, width):
    write_wav(tmp_path / "a.wav", tone(440), width=width, channels=2)
    samples, rate = read_wav(tmp_path / "a.wav")
    assert rate == 16000 and samples.shape == (8000,)
    np.testing.assert_allclose(samples.numpy(), tone(440), atol=2.0 / (2 ** (8 * width - 1)) + 1e-6)


def write_riff(path, samples: np.ndarray, rate: int, kind: str, channels: int = 1) -> None:
    """A WAV file written by hand (the wave module writes only plain PCM): ``kind`` is u8, i16,
    i24, i32, f32 or f64, with ``+ext`` for WAVE_FORMAT_EXTENSIBLE."""
    kind, ext = kind.split("+")[0], kind.endswith("+ext")
    x = np.repeat(np.clip(samples, -1, 1)[:, None], channels, axis=1).reshape(-1)
    if kind == "u8":
        raw = (np.round(x * 127) + 128).astype(np.uint8).tobytes()
    elif kind == "i24":
        ints = np.round(x * (2**23 - 1)).astype("<i4")
        raw = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    elif kind[0] == "i":
        bits = int(kind[1:])
        raw = np.round(x * (2 ** (bits - 1) - 1)).astype(f"<i{bits // 8}").tobytes()
    else:
        raw = x.astype(f"<f{int(kind[1:]) // 8}").tobytes()
    width = {"u8": 1, "i16": 2, "i24": 3, "i32": 4, "f32": 4, "f64": 8}[kind]
    tag = 3 if kind[0] == "f" else 1
    fmt = struct.pack("<HHIIHH", 0xFFFE if ext else tag, channels, rate,
                      rate * width * channels, width * channels, 8 * width)  # fmt: skip
    if ext:  # cbSize, valid bits, channel mask, the sub-format GUID (its tag first)
        guid = struct.pack("<H", tag) + bytes.fromhex("000000001000800000aa00389b71")
        fmt += struct.pack("<HHI", 22, 8 * width, 0) + guid
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # an odd chunk, padded, to skip
    chunks += b"data" + struct.pack("<I", len(raw)) + raw
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)


KINDS = ["u8", "i16", "i24", "i32", "f32", "f64", "i16+ext", "f32+ext", "i24+ext"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels", [1, 2])
def test_every_wav_format_gives_the_features_of_the_float_signal(tmp_path, kind, channels):
    # broadband noise: every mel band has energy, so log-mel differences measure the format
    signal = 0.3 * np.random.default_rng(0).standard_normal(4000).clip(-3, 3)
    write_riff(tmp_path / "a.wav", signal, 16000, kind, channels)
    samples, rate = read_wav(tmp_path / "a.wav")
    assert rate == 16000 and samples.shape == (4000,)
    # one step of the integer grid (floats: none to speak of); write_riff scales by 2**(b-1) - 1
    # where the reader divides by 2**(b-1): up to one more step at full scale
    bits = {"u8": 8, "i16": 16, "i24": 24, "i32": 32}.get(kind.split("+")[0], 64)
    step = 1.0 / 2 ** (bits - 1)
    np.testing.assert_allclose(samples.numpy(), signal, atol=2 * step + 1e-7)
    want = log_mel(torch.tensor(signal, dtype=torch.float32), 16000)
    got = log_mel(samples, rate)
    # quantisation noise against a band's energy: 8-bit is loud (-48 dB), 16-bit and up is not
    torch.testing.assert_close(got, want, atol=0.1 if kind == "u8" else 2e-3, rtol=0)


def test_unsupported_and_broken_wavs_are_named(tmp_path):
    write_riff(tmp_path / "ok.wav", np.zeros(100), 8000, "i16")
    raw = (tmp_path / "ok.wav").read_bytes()
    (tmp_path / "alaw.wav").write_bytes(raw[:20] + struct.pack("<H", 6) + raw[22:])
    with pytest.raises(AudioError, match=r"alaw\.wav: WAV format 0x0006 is not supported"):
        read_wav(tmp_path / "alaw.wav")
    (tmp_path / "nofmt.wav").write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    with pytest.raises(AudioError, match=r"nofmt\.wav: no 'fmt ' chunk"):
        read_wav(tmp_path / "nofmt.wav")
    write_riff(tmp_path / "nan.wav", np.full(100, np.nan), 8000, "f32")
    with pytest.raises(AudioError, match="NaN"):
        read_wav(tmp_path / "nan.wav")


def test_8khz_audio_works_with_default_settings(tmp_path):
    write_wav(tmp_path / "t8.wav", tone(1000.0, 1.0, 8000), rate=8000)
    write_wav(tmp_path / "t16.wav", tone(1000.0, 1.0, 16000), rate=16000)
    features = log_mel(*read_wav(tmp_path / "t8.wav"))  # f_max None: 4000 Hz for this file
    assert features.shape == (98, 40)
    # a data set of both rates: one range for both, the same band peaks for the same tone
    cfg, note = resolve_f_max(AudioConfig(), [16000, 8000])
    assert cfg.f_max == 4000 and "lowest sample rate (8000 Hz)" in note
    assert resolve_f_max(AudioConfig(f_max=3000), [8000]) == (AudioConfig(f_max=3000), "")
    assert resolve_f_max(AudioConfig(), [16000, 44100])[0].f_max == 8000
    peaks = [
        int(log_mel(*read_wav(tmp_path / f), cfg).mean(0).argmax()) for f in ("t8.wav", "t16.wav")
    ]
    assert peaks[0] == peaks[1]
    bank = mel_filterbank(8000, 256, cfg)
    assert abs(np.linspace(0, 4000, 129)[bank[:, peaks[0]].argmax()] - 1000) < 100


def test_log_mel_of_a_tone_peaks_in_the_band_of_its_frequency(tmp_path):
    write_wav(tmp_path / "tone.wav", tone(1000.0, 1.0))
    features = log_mel(*read_wav(tmp_path / "tone.wav"))
    assert features.shape == (98, 40)  # 1 s in 10 ms hops, 25 ms windows; 40 bands
    bank = mel_filterbank(16000, 512, AudioConfig())
    freqs = np.linspace(0, 8000, 257)
    centres = freqs[bank.argmax(0).numpy()]
    peak = int(features.mean(0).argmax())
    assert abs(centres[peak] - 1000) < 120
    # a different sample rate gives comparable features: the same band peaks
    write_wav(tmp_path / "tone22.wav", tone(1000.0, 1.0, 22050), rate=22050)
    assert int(log_mel(*read_wav(tmp_path / "tone22.wav")).mean(0).argmax()) == peak


def test_unreadable_wav_is_named(tmp_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioError, match=r"noise\.wav"):
        read_wav(bad)
    with pytest.raises(AudioError, match="--f-max"):
        mel_filterbank(8000, 256, AudioConfig(f_max=8000))
    write_wav(tmp_path / "click.wav", tone(440.0, 0.001))  # 16 samples: under one window
    with pytest.raises(AudioError, match=r"click\.wav is shorter \(16 samples\)"):
        log_mel(*read_wav(tmp_path / "click.wav"), name=str(tmp_path / "click.wav"))


# -- data readers and bad input -------------------------------------------------------------------
def write_csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_bad_tables_get_clear_errors(tmp_path):
    cols = Columns()
    path = write_csv(tmp_path / "a.csv", [("fine", "x")], header=("review", "label"))
    with pytest.raises(LabelledDataError, match=r"no column 'text'.*--text-col"):
        load_labelled(path, cols)
    path = write_csv(tmp_path / "b.csv", [("fine", "x"), ("no label", "")])
    with pytest.raises(LabelledDataError, match="line 3: column 'label' is empty"):
        load_labelled(path, cols)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(LabelledDataError, match="is empty"):
        load_labelled(tmp_path / "empty.csv", cols)
    (tmp_path / "binary.csv").write_bytes(b"text,label\n\xff\xfe\x00\x81,x\n")
    with pytest.raises(LabelledDataError, match="not UTF-8"):
        load_labelled(tmp_path / "binary.csv", cols)
    with pytest.raises(LabelledDataError, match="no such file"):
        load_labelled(tmp_path / "missing.csv", cols)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(LabelledDataError, match=r"cannot read .*junk\.npz"):
        load_labelled(tmp_path / "junk.npz", cols)
    ragged = np.array([np.zeros((3, 2)), np.zeros((4, 2))], dtype=object)
    np.savez(tmp_path / "ragged.npz", x=ragged, y=np.array([0, 1]))
    with pytest.raises(LabelledDataError, match=r"Python objects.*lengths"):
        load_labelled(tmp_path / "ragged.npz", cols)  # never unpickled
    (tmp_path / "x.jsonl").write_text('{"text": "a", "label": "b"}\n{oops\n')
    with pytest.raises(LabelledDataError, match="line 2: not JSON"):
        load_labelled(tmp_path / "x.jsonl", cols)
    long = write_csv(
        tmp_path / "long.csv", [("s1", "1", "x"), ("s1", "oops", "x")], ("id", "v", "label")
    )
    with pytest.raises(LabelledDataError, match="line 3: column 'v' is not a number"):
        load_labelled(long, Columns(sequence_col="id"))
    mixed = write_csv(
        tmp_path / "mixed.csv", [("s1", "1", "x"), ("s1", "2", "y")], ("id", "v", "label")
    )
    with pytest.raises(LabelledDataError, match=r"several labels.*train tag"):
        load_labelled(mixed, Columns(sequence_col="id"))


def test_numeric_long_table_npz_and_ts(tmp_path):
    rows = [("b", 2, 5.0, "up"), ("a", 1, 1.0, "down"), ("b", 1, 4.0, "up"), ("a", 2, 0.5, "down")]
    path = write_csv(tmp_path / "long.csv", rows, ("id", "t", "value", "label"))
    data = load_labelled(path, Columns(sequence_col="id", time_col="t"))
    assert data.kind == "numeric" and data.labels == ["up", "down"]
    np.testing.assert_array_equal(data.inputs[0][:, 0], [4.0, 5.0])  # ordered by t
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 5, 2)), y=np.array([0, 1, 0]), lengths=[5, 2, 3])
    data = load_labelled(tmp_path / "x.npz", Columns())
    assert [len(s) for s in data.inputs] == [5, 2, 3] and data.labels == ["0", "1", "0"]
    (tmp_path / "a.ts").write_text("@problemName x\n@data\n1,2,3:4,5,6:cat\n7,8:9,10:dog\n")
    data = load_labelled(tmp_path / "a.ts", Columns())
    assert data.inputs[0].shape == (3, 2) and data.labels == ["cat", "dog"]


# -- training, small and fast ---------------------------------------------------------------------
def sentiment_rows(n: int, seed: int = 0):
    """Short texts whose label is carried by one word among fillers."""
    rng = random.Random(seed)
    fillers = [
        "the",
        "a",
        "film",
        "plot",
        "actor",
        "scene",
        "was",
        "is",
        "it",
        "this",
        "and",
        "of",
        "story",
    ]
    rows = []
    for _ in range(n):
        label = rng.random() < 0.6
        words = rng.choices(fillers, k=rng.randint(3, 9))
        words.insert(
            rng.randrange(len(words) + 1),
            rng.choice(["great", "superb"] if label else ["dull", "awful"]),
        )
        rows.append((" ".join(words), "pos" if label else "neg"))
    return rows


def quick_train(tmp_path, name="run"):
    return TrainConfig(
        out=str(tmp_path / name),
        max_steps=120,
        batch_size=16,
        eval_every=60,
        lr=5e-3,
        device="cpu",
        progress=False,
        seed=0,
    )


def test_text_classifier_learns_beyond_the_majority(tmp_path):
    path = write_csv(tmp_path / "reviews.csv", sentiment_rows(400))
    model = ClassifyModelConfig(hidden_size=24, embedding_size=16, dropout=0.0)
    train_classify(model, ClassifyDataConfig(data=str(path)), quick_train(tmp_path))
    m = evaluate_run(tmp_path / "run", split="test")
    assert m["majority"]["accuracy"] < 0.7
    assert m["accuracy"] > 0.9 and m["macro_f1"] > 0.9
    assert (tmp_path / "run" / "confusion-test.png").stat().st_size > 1000
    out = predict(tmp_path / "run", ["the film was superb", "an awful plot"])
    assert [o["label"] for o in out] == ["pos", "neg"]


@pytest.mark.parametrize("rate", [16000, 8000])
def test_audio_classifier_on_generated_tones(tmp_path, capsys, rate):
    rng = np.random.default_rng(0)
    for label, base in (("low", 300.0), ("high", 2500.0)):
        (tmp_path / "sounds" / label).mkdir(parents=True)
        for i in range(12):
            freq = base * rng.uniform(0.8, 1.25)
            noise = 0.05 * rng.standard_normal(int(rate * rng.uniform(0.15, 0.3)))
            write_wav(
                tmp_path / "sounds" / label / f"{i}.wav",
                tone(freq, len(noise) / rate, rate) + noise,
                rate=rate,
            )
    data = ClassifyDataConfig(data=str(tmp_path / "sounds"), split_fractions="0.5,0.25,0.25")
    model = ClassifyModelConfig(hidden_size=16, pooling="mean", dropout=0.0)
    cfg = quick_train(tmp_path)
    cfg.max_steps = 60
    train_classify(model, data, cfg, audio=AudioConfig(n_mels=20))  # the default --f-max
    # 8 kHz audio: the mel range stops at its Nyquist frequency, said and stored in the run
    note = "audio: --f-max 4000 Hz: half the lowest sample rate (8000 Hz) of the files"
    assert (note in capsys.readouterr().out) == (rate == 8000)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["task"]["audio"]
    assert stored["f_max"] == min(8000, rate / 2)
    m = evaluate_run(tmp_path / "run", split="test", plot=None)
    assert m["accuracy"] == 1.0 > m["majority"]["accuracy"]
    capsys.readouterr()
    wav = tmp_path / "sounds" / "high" / "0.wav"
    assert main(["predict", str(tmp_path / "run"), str(wav)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("high ") and lines[0].endswith(str(wav))
    # a file at another rate gets the run's bands: a higher rate works, a lower one cannot
    noise = 0.05 * rng.standard_normal(int(0.3 * 22050))  # as the training files have
    write_wav(tmp_path / "22k.wav", tone(2500.0, 0.3, 22050) + noise, rate=22050)
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "22k.wav")]) == 0
    assert capsys.readouterr().out.startswith("high ")
    if rate == 16000:
        write_wav(tmp_path / "8k.wav", tone(2500.0, 0.3, 8000), rate=8000)
        assert main(["predict", str(tmp_path / "run"), str(tmp_path / "8k.wav")]) == 2
        assert "resample the file to at least 16000 Hz" in capsys.readouterr().err


def test_numeric_classifier_from_a_long_table(tmp_path, capsys):
    """Sequences of noisy rising or falling values, one row per step; then predict from .npy."""
    rng = np.random.default_rng(0)
    rows = []
    for seq in range(120):
        label = "up" if seq % 3 else "down"
        n = int(rng.integers(4, 12))
        values = np.cumsum(rng.normal(0.5 if label == "up" else -0.5, 0.6, n))
        for t in rng.permutation(n):  # rows out of order: --time-col sorts them
            rows.append((f"s{seq}", int(t), float(values[t]), float(rng.normal()), label))
    path = write_csv(tmp_path / "long.csv", rows, ("id", "t", "value", "noise", "label"))
    data = ClassifyDataConfig(data=str(path), sequence_col="id", time_col="t")
    model = ClassifyModelConfig(hidden_size=16, pooling="last", dropout=0.0)
    train_classify(model, data, quick_train(tmp_path))
    m = evaluate_run(tmp_path / "run", split="test", plot=None)
    assert m["accuracy"] > max(0.9, m["majority"]["accuracy"] + 0.2)
    rising = np.stack([np.arange(8.0) * 0.5, np.zeros(8)], axis=1)
    np.save(tmp_path / "one.npy", rising)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "one.npy")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("up ")
    # a padded .npz with lengths: each sequence cut to its length before the model reads it
    falling = np.stack([-np.arange(8.0) * 0.5, np.zeros(8)], axis=1)
    padded = np.stack([rising, np.concatenate([falling[:5], np.full((3, 2), 99.0)])])
    np.savez(tmp_path / "two.npz", x=padded, lengths=np.array([8, 5]))
    task = json.loads((tmp_path / "run" / "config.json").read_text())["task"]
    inputs, names = read_inputs(str(tmp_path / "two.npz"), task)
    assert [x.shape for x in inputs] == [(8, 2), (5, 2)] and names[1].endswith("two.npz[1]")
    out = predict(tmp_path / "run", inputs)
    assert [o["label"] for o in out] == ["up", "down"]


def test_tagger_learns_a_tag_that_needs_the_previous_token(tmp_path):
    """Tag each token with whether the token before it was 'not': memory of one step."""
    rng = random.Random(0)
    words = ["not", "good", "bad", "film", "plot", "fine", "dull", "great"]
    with open(tmp_path / "tags.jsonl", "w") as f:
        for _ in range(300):
            tokens = rng.choices(words, k=rng.randint(3, 10))
            tags = ["NEG" if i and tokens[i - 1] == "not" else "O" for i in range(len(tokens))]
            f.write(json.dumps({"tokens": tokens, "tags": tags}) + "\n")
    data = ClassifyDataConfig(
        data=str(tmp_path / "tags.jsonl"), text_col="tokens", label_col="tags"
    )
    model = ClassifyModelConfig(hidden_size=16, embedding_size=8, bidirectional=False, dropout=0.0)
    train_classify(model, data, quick_train(tmp_path), aligned=True)
    m = evaluate_run(tmp_path / "run", split="test", plot=None)
    assert m["majority"]["class"] == "O"
    assert m["accuracy"] > max(0.97, m["majority"]["accuracy"] + 0.05)
    assert m["per_class"]["NEG"]["f1"] > 0.9
    # predict tags every token: a text, longer than --max-length, and the training file itself
    long_text = " ".join(["good", "not", "bad", "film"] * 120)  # 480 tokens > 400
    (out,) = predict(tmp_path / "run", [long_text.split()])
    assert out["labels"] == ["O", "O", "NEG", "O"] * 120
    assert [len(t) for t in out["top"]] == [1] * 480


def test_cli_tag_predict_texts_and_files(tmp_path, capsys):
    """`rnnkit predict` on a tag run: texts, .txt, .conll and the .jsonl/.csv it trained on."""
    rng = random.Random(1)
    words = ["not", "good", "bad", "film", "plot", "Fine"]
    rows = []
    for _ in range(300):
        tokens = rng.choices(words, k=rng.randint(3, 8))
        rows.append(
            (tokens, ["NEG" if i and tokens[i - 1] == "not" else "O" for i in range(len(tokens))])
        )
    with open(tmp_path / "tags.jsonl", "w") as f:
        for tokens, tags in rows:
            f.write(json.dumps({"tokens": tokens, "tags": tags}) + "\n")
    run = str(tmp_path / "run")
    args = ["train", "tag", "--data", str(tmp_path / "tags.jsonl"), "--text-col", "tokens"]
    args += ["--label-col", "tags", "--out", run, "--hidden-size", "16", "--embedding-size", "8"]
    args += ["--no-bidirectional", "--dropout", "0", "--max-steps", "300", "--batch-size", "16"]
    assert main([*args, "--lr", "1e-2", "--eval-every", "100", "--no-progress"]) == 0
    capsys.readouterr()

    def tagged(*inputs):
        assert main(["predict", run, *inputs]) == 0
        return capsys.readouterr().out.splitlines()

    # case is kept as written: "Fine" is a training token, "fine" would be <unk>
    assert tagged("not good Fine", "plot not film") == [
        "not/O good/NEG Fine/O",
        "plot/O not/O film/NEG",
    ]
    (tmp_path / "in.txt").write_text("not bad\n\nfilm not plot\n")
    assert tagged(str(tmp_path / "in.txt")) == ["not/O bad/NEG", "film/O not/O plot/NEG"]
    (tmp_path / "in.conll").write_text("not\tO\nFine\tNEG\n\ngood\n")
    assert tagged(str(tmp_path / "in.conll")) == ["not/O Fine/NEG", "good/O"]
    lines = tagged(str(tmp_path / "tags.jsonl"))
    assert len(lines) == 300
    truth = [" ".join(f"{t}/{g}" for t, g in zip(*row)) for row in rows]
    assert sum(a == b for a, b in zip(lines, truth)) > 0.9 * len(rows)
    write_csv(tmp_path / "in.csv", [("not good", "x")], header=("tokens", "label"))
    assert tagged(str(tmp_path / "in.csv")) == ["not/O good/NEG"]
    assert main(["predict", run, "not film", "--json", "--top", "2"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["input"] == "not film" and got["tokens"] == ["not", "film"]
    assert got["labels"] == ["O", "NEG"]
    assert [[c for c, _ in step] for step in got["top"]] == [["O", "NEG"], ["NEG", "O"]]
    assert all(abs(sum(p for _, p in step) - 1) < 1e-5 for step in got["top"])  # two classes
    # bad input: a one-line error, no traceback
    (tmp_path / "empty.jsonl").write_text(json.dumps({"tokens": []}) + "\n")
    assert main(["predict", run, str(tmp_path / "empty.jsonl")]) == 2
    assert "line 1: no tokens to tag" in capsys.readouterr().err
    assert main(["predict", run, str(tmp_path / "in.csv"), "--top", "0"]) == 2
    assert "--top must be >= 1" in capsys.readouterr().err


def test_cli_classify_end_to_end_and_bad_inputs(tmp_path, capsys):
    path = write_csv(tmp_path / "reviews.csv", sentiment_rows(200))
    run = tmp_path / "cli"
    args = [
        "train",
        "classify",
        "--data",
        str(path),
        "--out",
        str(run),
        "--max-steps",
        "40",
        "--hidden-size",
        "16",
        "--batch-size",
        "16",
        "--eval-every",
        "20",
        "--no-progress",
    ]
    assert main(args) == 0
    assert main(args) == 2  # nothing overwritten
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json", "--plot", str(tmp_path / "cm.png")]) == 0
    m = json.loads(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "per_class", "confusion", "majority", "imbalance"} <= set(m)
    assert (tmp_path / "cm.png").exists()
    assert main(["predict", str(run), "superb acting", str(path), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 200 and lines[0].endswith("superb acting")
    # resume continues to a larger budget
    assert main([*args[:6], "--max-steps", "60", "--resume", "--no-progress"]) == 0
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 60
    # a label unseen in training, at evaluation
    unseen = write_csv(tmp_path / "unseen.csv", [("a fine film", "meh")])
    assert main(["evaluate", str(run), "--data", str(unseen)]) == 2
    assert "label 'meh' was not seen in training" in capsys.readouterr().err
    # a missing column, an empty label, a WAV that is not one
    bad = write_csv(tmp_path / "bad.csv", [("x", "pos")], header=("review", "label"))
    assert main(["train", "classify", "--data", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "no column 'text'" in capsys.readouterr().err
    (tmp_path / "wavs" / "a").mkdir(parents=True)
    (tmp_path / "wavs" / "a" / "x.wav").write_bytes(b"\x00" * 64)
    assert (
        main(["train", "classify", "--data", str(tmp_path / "wavs"), "--out", str(tmp_path / "w")])
        == 2
    )
    assert "x.wav" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "w").exists()


def test_given_validation_and_test_files_replace_their_share(tmp_path):
    rows = sentiment_rows(50)
    path = write_csv(tmp_path / "data.csv", rows)
    val = write_csv(tmp_path / "val.csv", sentiment_rows(7, seed=1))
    test = write_csv(tmp_path / "test.csv", sentiment_rows(9, seed=2))
    cut = split_indices(len(rows), (0.8, 0.1, 0.1), 0)
    texts = [r[0] for r in rows]

    def read(**files):
        splits = read_splits(ClassifyDataConfig(data=str(path), **files), AudioConfig(), False)
        return {name: len(split) for name, split in splits.items()}, splits

    sizes, splits = read()
    assert sizes == {"train": 40, "val": 5, "test": 5}
    assert splits["test"].inputs == [texts[i] for i in cut["test"]]
    sizes, splits = read(val_data=str(val), test_data=str(test))
    assert sizes == {"train": 50, "val": 7, "test": 9}  # all of --data trains
    assert splits["train"].inputs == texts
    sizes, splits = read(val_data=str(val))
    assert sizes == {"train": 45, "test": 5, "val": 7}
    assert splits["train"].inputs == [texts[i] for i in sorted(cut["train"] + cut["val"])]
    assert splits["test"].inputs == [texts[i] for i in cut["test"]]
    sizes, splits = read(test_data=str(test))
    assert sizes == {"train": 45, "val": 5, "test": 9}
    assert splits["val"].inputs == [texts[i] for i in cut["val"]]


def test_a_label_only_in_the_test_split_does_not_stop_training(tmp_path, capsys):
    data = write_csv(tmp_path / "data.csv", sentiment_rows(60))
    val = write_csv(tmp_path / "val.csv", sentiment_rows(10, seed=1))
    test = write_csv(tmp_path / "test.csv", [("a film", "meh"), ("a superb film", "pos")])
    run = tmp_path / "run"
    args = ["train", "classify", "--data", str(data), "--val-data", str(val)]
    args += ["--test-data", str(test), "--out", str(run), "--max-steps", "4"]
    assert main([*args, "--hidden-size", "8", "--eval-every", "2", "--no-progress"]) == 0
    task = json.loads((run / "config.json").read_text())["task"]
    assert task["sizes"] == {"train": 60, "val": 10, "test": 2}
    assert task["classes"] == ["neg", "pos"]
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 2  # scoring the test split is where it counts
    assert "label 'meh' was not seen in training" in capsys.readouterr().err


# -- metrics --------------------------------------------------------------------------------------
def test_report_matches_hand_computed_figures():
    true = torch.tensor([0, 0, 0, 1, 1, 2])
    pred = torch.tensor([0, 0, 1, 1, 2, 2])
    r = classification_report(true, pred, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(4 / 6)
    # per class: a P=1 R=2/3 F1=0.8; b P=1/2 R=1/2 F1=0.5; c P=1/2 R=1 F1=2/3
    assert r["per_class"]["a"]["f1"] == pytest.approx(0.8)
    assert r["per_class"]["c"]["recall"] == 1.0
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert r["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    base = majority_baseline(torch.tensor([1, 1, 0]), true, ["a", "b", "c"])
    assert base["class"] == "b" and base["accuracy"] == pytest.approx(2 / 6)


# -- quality on real data (slow: downloads the sktime wheel once, trains a minute) ----------------
@pytest.mark.slow
def test_japanese_vowels_speaker_accuracy(tmp_path):
    from rnnkit.datasets import DatasetError

    try:
        load_labelled("japanese-vowels", Columns())
    except DatasetError as e:
        pytest.skip(f"japanese-vowels not available here: {e}")
    model = ClassifyModelConfig(hidden_size=64, pooling="last")
    cfg = TrainConfig(
        out=str(tmp_path / "jv"),
        max_steps=300,
        batch_size=16,
        lr=3e-3,
        eval_every=50,
        device="cpu",
        progress=False,
    )
    train_classify(model, ClassifyDataConfig(data="japanese-vowels"), cfg)
    m = evaluate_run(tmp_path / "jv", split="test", plot=None)
    assert m["examples"] == 370
    assert m["accuracy"] > max(0.95, m["majority"]["accuracy"] + 0.5)
