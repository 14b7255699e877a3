"""rnnkit.decoding: the steppers against the model's forward, sampling, greedy and beam search,
for the standard layers and for any cell (rnnkit.LayerNormLSTMCell, a user's own class)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.architectures import ManyToMany, OneToMany, Seq2Seq
from rnnkit.architectures.one_to_many import OneToManyState
from rnnkit.architectures.seq2seq import DecoderState
from rnnkit.decoding import (
    ForwardStepper,
    SamplingConfig,
    Stepper,
    beam_search,
    decode,
    generate,
    pick_next,
    sample_text,
    stepper_for,
)
from rnnkit.decoding import sample as sample_module
from rnnkit.text.vocab import Vocab


class TinyGRUCell(nn.Module):
    """A user's GRU-like cell, written to ``rnnkit.Recurrent``'s protocol: ``project_input``
    hoists the input matmul out of the time loop, ``step(xp_t, h) -> (y_t, h)``.

        z = sigmoid(W_z x + U_z h),  n = tanh(W_n x + U_n (z * h)),  h' = (1 - z) h + z n
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.w = nn.Linear(input_size, 2 * hidden_size)
        self.u_z = nn.Linear(hidden_size, hidden_size, bias=False)
        self.u_n = nn.Linear(hidden_size, hidden_size, bias=False)

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.w(x)  # (T, B, 2H)

    def step(self, xp: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xz, xn = xp.chunk(2, -1)
        z = torch.sigmoid(xz + self.u_z(h))
        n = torch.tanh(xn + self.u_n(z * h))
        h = (1 - z) * h + z * n
        return h, h


CUSTOM_CELLS = [TinyGRUCell, rnnkit.LayerNormLSTMCell]


def token_model(cell, *, vocab=30, num_layers=2, bidirectional=False) -> ManyToMany:
    torch.manual_seed(0)
    model = ManyToMany(
        vocab,
        vocab_size=vocab,
        embedding_size=8,
        hidden_size=12,
        num_layers=num_layers,
        cell=cell,
        bidirectional=bidirectional,
    )
    return model.double().eval()


# -- the language-model steppers -------------------------------------------------------------------
@pytest.mark.parametrize("cell", [*CUSTOM_CELLS, "lstm", "gru"])
def test_forward_stepper_matches_the_forward_pass(cell):
    model = token_model(cell, num_layers=3)
    x = torch.randint(0, 30, (2, 9))
    expected, final = model(x)
    stepper = ForwardStepper(model)
    state = stepper.start(x[:, :0])  # no prefix: the zero state
    logits = []
    for t in range(9):
        out, state = stepper.step(x[:, t], state)
        assert out.grad_fn is None
        logits.append(out)
    torch.testing.assert_close(torch.stack(logits, 1), expected)
    # a prefix read in one call, then steps: the same logits and the same final state
    state = stepper.start(x[:, :4])
    for t in range(4, 9):
        out, state = stepper.step(x[:, t], state)
        torch.testing.assert_close(out, expected[:, t])
    for got, want in zip(
        state if isinstance(state, tuple) else (state,),
        final if isinstance(final, tuple) else (final,),
    ):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "rnn_relu"])
def test_fast_stepper_matches_the_model(cell):
    torch.manual_seed(0)
    model = (
        ManyToMany(30, vocab_size=30, embedding_size=8, hidden_size=12, num_layers=3, cell=cell)
        .double()
        .eval()
    )
    x = torch.randint(0, 30, (2, 9))
    expected, final = model(x)
    stepper = Stepper(model)
    state = stepper.zero_state(2, dtype=torch.float64)
    logits = []
    with torch.inference_mode():
        for t in range(9):
            out, state = stepper.step(x[:, t], state)
            assert out.grad_fn is None
            logits.append(out)
    torch.testing.assert_close(torch.stack(logits, 1), expected)
    # started from a prefix read by the model's forward: the same logits from there on
    state = stepper.start(x[:, :5])
    with torch.inference_mode():
        for t in range(5, 9):
            out, state = stepper.step(x[:, t], state)
            torch.testing.assert_close(out, expected[:, t])


def test_stepper_for_picks_the_fast_path_only_for_standard_layers():
    assert isinstance(stepper_for(token_model("lstm")), Stepper)
    assert isinstance(stepper_for(token_model("rnn_relu")), Stepper)
    for cell in CUSTOM_CELLS:
        model = token_model(cell)
        assert isinstance(model.rnn, rnnkit.Recurrent) and not hasattr(model.rnn, "mode")
        assert isinstance(stepper_for(model), ForwardStepper)
        with pytest.raises(ValueError, match=r"fast stepper needs an rnnkit\.RNN, LSTM or GRU"):
            Stepper(model)


@pytest.mark.parametrize("cell", ["lstm", TinyGRUCell])
def test_a_bidirectional_or_feature_model_cannot_be_sampled(cell):
    vocab = Vocab.build("abc \n")
    model = token_model(cell, vocab=len(vocab), bidirectional=True)
    with pytest.raises(ValueError, match="unidirectional"):
        sample_text(model, vocab, length=5)
    with pytest.raises(ValueError, match="unidirectional"):
        model.step(torch.tensor([1]), None)
    features = ManyToMany(4, input_size=3, hidden_size=6, cell=cell)
    with pytest.raises(ValueError, match="token model"):
        stepper_for(features)


# -- sampling text ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CUSTOM_CELLS)
def test_sample_text_with_any_cell_is_seeded(cell):
    vocab = Vocab.build("the quick brown fox jumps over the lazy dog\n")
    model = token_model(cell, vocab=len(vocab))
    pieces: list[str] = []
    a = sample_text(
        model, vocab, prime="the ", length=60, sampling=SamplingConfig(seed=1), write=pieces.append
    )
    b = sample_text(model, vocab, prime="the ", length=60, sampling=SamplingConfig(seed=1))
    c = sample_text(model, vocab, prime="the ", length=60, sampling=SamplingConfig(seed=2))
    assert len(a) == 60 and set(a) <= set(vocab.symbols)
    assert a == b == "".join(pieces)
    assert a != c
    # a one-token prime starts from the zero state
    assert len(sample_text(model, vocab, prime="t", length=5)) == 5


def test_the_fast_and_the_generic_stepper_sample_the_same_text(monkeypatch):
    vocab = Vocab.build("abcdefgh \n")
    model = token_model("lstm", vocab=len(vocab))
    sampling = SamplingConfig(seed=4, temperature=1.3)
    fast = sample_text(model, vocab, prime="abc", length=200, sampling=sampling)
    monkeypatch.setattr(sample_module, "stepper_for", ForwardStepper)
    generic = sample_text(model, vocab, prime="abc", length=200, sampling=sampling)
    assert fast == generic


def test_decoding_rules():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.9]])
    g = torch.Generator().manual_seed(0)
    assert pick_next(logits, SamplingConfig(argmax=True), g).item() == 1
    assert pick_next(logits, SamplingConfig(top_k=1), g).item() == 1
    assert pick_next(logits, SamplingConfig(top_p=1e-6), g).item() == 1
    draws = {pick_next(logits, SamplingConfig(top_k=2), g).item() for _ in range(200)}
    assert draws == {1, 3}
    with pytest.raises(ValueError, match="--temperature"):
        SamplingConfig(temperature=0)
    with pytest.raises(ValueError, match="--top-p"):
        SamplingConfig(top_p=1.5)


# -- OneToMany and Seq2Seq with a user's cell ------------------------------------------------------
@pytest.mark.parametrize("cell", CUSTOM_CELLS)
def test_one_to_many_decodes_with_any_cell(cell):
    torch.manual_seed(0)
    model = OneToMany(
        12, num_conditions=3, hidden_size=16, embedding_size=8, cell=cell, num_layers=2
    )
    conditions = torch.tensor([0, 1, 2, 1])
    greedy = generate(model, conditions, max_length=12)
    hyps = beam_search(
        model.step,
        OneToManyState.index_select,
        model.start(conditions),
        4,
        bos_id=2,
        eos_id=3,
        width=1,
        max_length=12,
    )
    assert greedy == [[t for t in h[0].tokens if t != 3] for h in hyps]
    # greedy stepping agrees with the teacher-forced forward: each output is its argmax
    for row, out in enumerate(greedy):
        target_in = torch.tensor([[2, *out]])
        logits = model(conditions[row : row + 1], target_in)  # (1, T+1, V)
        assert logits[0, : len(out)].argmax(-1).tolist() == out
    beams = generate(model, conditions, beam=3, max_length=12)
    assert len(beams) == 4 and all(0 <= t < 12 and t != 3 for seq in beams for t in seq)
    sampled = generate(model, conditions, sampling=SamplingConfig(seed=5, temperature=1.5))
    assert sampled == generate(model, conditions, sampling=SamplingConfig(seed=5, temperature=1.5))
    with pytest.raises(ValueError, match="do not mix"):
        generate(model, conditions, beam=2, sampling=SamplingConfig(seed=1))
    with pytest.raises(ValueError, match="--beam"):
        generate(model, conditions, beam=0)


@pytest.mark.parametrize("cell", CUSTOM_CELLS)
def test_seq2seq_decodes_with_any_cell(cell):
    torch.manual_seed(0)
    model = Seq2Seq(
        20, 25, hidden_size=16, embedding_size=8, cell=cell, encoder_layers=2, decoder_layers=2
    ).eval()
    source = torch.randint(4, 20, (3, 6))
    lengths = torch.tensor([6, 2, 4])
    for row, n in enumerate(lengths.tolist()):
        source[row, n:] = 0
    greedy = decode(model, source, lengths, max_length=9)
    hyps = beam_search(
        model.step,
        DecoderState.index_select,
        model.start(source, lengths),
        3,
        bos_id=2,
        eos_id=3,
        width=1,
        max_length=9,
    )
    assert greedy.tokens == [[t for t in h[0].tokens if t != 3] for h in hyps]
    for g, h in zip(greedy.scores, hyps):
        assert g == pytest.approx(h[0].log_prob, abs=1e-4)
    beams = decode(model, source, lengths, beam=3, max_length=9)
    for w, out, n in zip(beams.attention, beams.tokens, lengths.tolist()):
        assert w.shape[1] == n and w.shape[0] >= len(out)
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[0]))
    sampled = decode(model, source, lengths, sampling=SamplingConfig(seed=3))
    assert sampled.tokens == decode(model, source, lengths, sampling=SamplingConfig(seed=3)).tokens
