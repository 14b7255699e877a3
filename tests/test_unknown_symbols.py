"""Symbols a run never saw, in a prime or in sources to translate: they read as the unknown
symbol, as training and evaluation read them, with a warning that counts and names them; text
with nothing known is refused."""

from __future__ import annotations

import pytest
import torch

from rnnkit.architectures import ManyToMany
from rnnkit.cli.main import main
from rnnkit.decoding import SamplingConfig, sample_text
from rnnkit.tasks.seq2seq.run import predict, train_seq2seq
from rnnkit.tasks.seq2seq.task import Seq2SeqDataConfig, Seq2SeqModelConfig
from rnnkit.text.tokens import TokenVocab
from rnnkit.text.unknown import UnknownSymbolsError, check_known
from rnnkit.text.vocab import UNKNOWN, Vocab
from rnnkit.training.config import TrainConfig


# -- the check -----------------------------------------------------------------------------------
def test_check_known_counts_and_names_the_unknown_symbols(capsys):
    vocab = Vocab.build("abc")
    assert check_known([list("abcab")], vocab, "--prime", "characters") == []
    assert capsys.readouterr().err == ""
    assert check_known([list("aéßéb")], vocab, "--prime", "characters") == ["é", "ß", "é"]
    assert capsys.readouterr().err == (
        "warning: 3 characters of --prime are not in the run's vocabulary ('é', 'ß'); "
        "they read as the unknown symbol\n"
    )
    check_known([list("aé")], vocab, "--prime", "characters")
    assert "1 character of --prime is not in" in capsys.readouterr().err


def test_check_known_lists_only_the_first_few_and_counts_the_texts(capsys):
    vocab = TokenVocab.build(["a good film"], "word")
    pieces = [["a", "good", "u", "v"], ["film"], ["w", "x", "y", "z", "a"]]
    check_known(pieces, vocab, "sources", "words")
    assert capsys.readouterr().err == (
        "warning: 6 words in 2 of the 3 sources are not in the run's vocabulary "
        "('u', 'v', 'w', 'x', 'y', ...); they read as the unknown symbol\n"
    )


def test_text_with_nothing_known_is_refused():
    vocab = Vocab.build("abc")
    with pytest.raises(UnknownSymbolsError, match=r"no character of --prime is in the run's"):
        check_known([list("éé")], vocab, "--prime", "characters")
    with pytest.raises(ValueError, match=r"no token of the 2 sources .* \('x', 'y'\)"):
        check_known([["x"], ["y"]], TokenVocab.build(["a b"], "space"), "sources", "tokens")
    check_known([[]], vocab, "--prime", "characters")  # nothing to read is another matter


def test_a_byte_vocabulary_knows_every_character(capsys):
    assert "é" in Vocab.build("", "byte")
    check_known([list("é☃")], Vocab.build("", "byte"), "--prime", "characters")
    assert capsys.readouterr().err == ""


# -- sampling with a prime -----------------------------------------------------------------------
def lm(vocab: Vocab) -> ManyToMany:
    torch.manual_seed(0)
    return ManyToMany(len(vocab), vocab_size=len(vocab), embedding_size=8, hidden_size=12).eval()


def test_a_prime_with_unseen_characters_is_read_with_the_unknown_symbol(capsys):
    vocab = Vocab.build("abcd \n")
    model, sampling = lm(vocab), SamplingConfig(seed=3)
    unseen = sample_text(model, vocab, prime="ab☃ d", length=40, sampling=sampling)
    assert "1 character of --prime is not in the run's vocabulary ('☃')" in capsys.readouterr().err
    marked = sample_text(model, vocab, prime=f"ab{UNKNOWN} d", length=40, sampling=sampling)
    assert capsys.readouterr().err == ""
    assert unseen == marked
    with pytest.raises(UnknownSymbolsError, match="no character of --prime"):
        sample_text(model, vocab, prime="☃é", length=5)


# -- translating sources -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s2s_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("s2s")
    words = [a + b + c for a in "abcd" for b in "abcd" for c in "abcd"]
    (root / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
    train_seq2seq(
        Seq2SeqModelConfig(hidden_size=16, embedding_size=8),
        Seq2SeqDataConfig(data=str(root / "pairs.tsv")),
        TrainConfig(out=str(root / "run"), max_steps=3, progress=False, batch_size=8),
    )
    return root / "run"


def test_seq2seq_predict_warns_and_reads_unseen_characters_as_unk(s2s_run, capsys):
    capsys.readouterr()
    a = predict(s2s_run, ["abx", "cab"])
    assert capsys.readouterr().err == (
        "warning: 1 character in 1 of the 2 sources is not in the run's vocabulary ('x'); "
        "it reads as the unknown symbol\n"
    )
    b = predict(s2s_run, ["abé", "cab"])  # another unseen character: read the same way
    assert a == b
    assert "('é')" in capsys.readouterr().err
    assert predict(s2s_run, ["abc"]) and capsys.readouterr().err == ""


def test_seq2seq_predict_refuses_sources_with_nothing_known(s2s_run, capsys, monkeypatch):
    with pytest.raises(UnknownSymbolsError, match=r"no character of the source is in"):
        predict(s2s_run, ["xyz"])
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("xyz\n"))
    assert main(["predict", str(s2s_run)]) == 2
    err = capsys.readouterr().err
    assert "no character of the source is in the run's vocabulary ('x', 'y', 'z')" in err
    assert "Traceback" not in err
