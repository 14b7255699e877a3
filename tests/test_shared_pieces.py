"""The pieces written once and shared: state leaves and masks, the gate maths, the splitter,
the vocabularies, the table reader, padding and the unigram baseline."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnkit.cells import functional as cellfn
from rnnkit.datasets.load import read_table_columns as read_columns
from rnnkit.datasets.padding import pad_batch
from rnnkit.datasets.splits import SplitError, split_indices, split_positions, split_sizes
from rnnkit.datasets.tables import TableError
from rnnkit.state import from_leaves, leaves, lengths_mask
from rnnkit.text.tokens import TokenVocab
from rnnkit.text.unigram import unigram_cross_entropy
from rnnkit.text.vocab import Vocab


def test_lengths_mask_matches_a_hand_built_mask():
    want = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(lengths_mask(torch.tensor([3, 1, 4]), 4), want)


def test_leaves_of_a_tensor_and_a_tuple_and_back():
    h, c = torch.zeros(2, 3), torch.ones(2, 3)
    assert leaves(h) == (h,) and leaves((h, c)) == (h, c)
    assert from_leaves(h, [c]) is c
    assert from_leaves((h, c), [c, h]) == (c, h)


def test_gate_functions_match_the_gate_equations():
    torch.manual_seed(0)
    H = 5
    gates, c = torch.randn(3, 4 * H, dtype=torch.float64), torch.randn(3, H, dtype=torch.float64)
    i, f, g, o = gates.chunk(4, -1)
    c_want = i.sigmoid() * g.tanh() + f.sigmoid() * c
    h, c_new = cellfn.lstm_update(gates, c)
    torch.testing.assert_close(c_new, c_want)
    torch.testing.assert_close(h, o.sigmoid() * c_want.tanh())
    xp, hp, h0 = (torch.randn(3, n, dtype=torch.float64) for n in (3 * H, 3 * H, H))
    (xr, xz, xn), (hr, hz, hn) = xp.chunk(3, -1), hp.chunk(3, -1)
    r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
    n = (xn + r * hn).tanh()
    torch.testing.assert_close(cellfn.gru_update(xp, hp, h0), (1 - z) * n + z * h0)


def test_split_sizes_follow_the_one_rule():
    # 0.15 * 10 = 1.5 rounds to 2 (even), 0.25 * 10 = 2.5 to 2; train takes the rest
    assert split_sizes(10, {"val": 0.15, "test": 0.25}) == {"val": 2, "test": 2, "train": 6}
    assert split_sizes(10, {"val": 0.15, "test": 0.25}, rounding="down")["val"] == 1
    assert split_sizes(10, {"val": 0.01, "test": 0.01}, at_least=1)["train"] == 8
    parts = split_sizes(10, {"train": 0.75, "val": 0.15, "test": 0.1}, rest="test")
    assert parts == {"train": 8, "val": 2, "test": 0}


def test_split_indices_are_deterministic_disjoint_and_complete():
    for rng in ("python", "numpy"):
        a = split_indices(50, {"val": 0.1, "test": 0.2}, seed=3, rng=rng)
        assert a == split_indices(50, {"val": 0.1, "test": 0.2}, seed=3, rng=rng)
        assert a != split_indices(50, {"val": 0.1, "test": 0.2}, seed=4, rng=rng)
        assert [len(a[p]) for p in ("train", "val", "test")] == [35, 5, 10]
        assert sorted(a["train"] + a["val"] + a["test"]) == list(range(50))
    with pytest.raises(SplitError, match="only 2 rows: too few"):
        split_indices(2, {"val": 0.1, "test": 0.1}, seed=0, at_least=1, min_rest=1, what="rows")


def test_split_positions_keep_the_text_in_order():
    parts = split_positions(101, 0.05, 0.1)
    assert parts == {"train": range(0, 86), "val": range(86, 91), "test": range(91, 101)}


@pytest.mark.parametrize(
    "vocab, text",
    [
        (Vocab.build("hello world", "char"), "hello wz"),
        (Vocab.build("", "byte"), "héllo ☃"),
        (TokenVocab.build(["a good film", "a bad film"], "word"), "a bad film"),
        (TokenVocab.build(["abc", "cab"], "char"), "cab"),
    ],
)
def test_vocabularies_round_trip_through_json(vocab, text):
    again = type(vocab).from_json(json.loads(json.dumps(vocab.to_json())))
    assert again == vocab
    ids = vocab.encode(text)
    decoded = again.decode(ids)
    if isinstance(vocab, Vocab) and vocab.kind == "char":
        assert decoded == "hello w\ufffd"  # z was never seen: the unknown symbol
    else:
        assert decoded == text


def test_vocabularies_share_the_lookup():
    chars, words = Vocab.build("ab"), TokenVocab.build(["x y"], "word")
    assert chars.lookup("abz") == [chars.lookup("a")[0], chars.lookup("b")[0], len(chars) - 1]
    assert words.lookup(["y", "nope"]) == [words.encode("y")[0], words.unk_id]


def test_read_columns_reads_csv_tsv_and_jsonl_alike(tmp_path):
    (tmp_path / "t.csv").write_text("kind,word\na, x \nb,y\n")
    (tmp_path / "t.tsv").write_text("kind\tword\na\tx\nb\ty\n")
    (tmp_path / "t.jsonl").write_text('{"kind": "a", "word": "x"}\n\n{"kind": "b", "word": "y"}\n')
    for name in ("t.csv", "t.tsv", "t.jsonl"):
        assert read_columns(str(tmp_path / name), {"--c": "kind", "--t": "word"}) == [
            ("a", "x"),
            ("b", "y"),
        ]
    with pytest.raises(TableError, match="--t 'text': no such column"):
        read_columns(str(tmp_path / "t.csv"), {"--t": "text"})


def test_pad_batch_pads_ids_and_features():
    ids, lengths = pad_batch([[5, 6, 7], [8]])
    assert torch.equal(ids, torch.tensor([[5, 6, 7], [8, 0, 0]]))
    assert lengths.tolist() == [3, 1]
    feats, _ = pad_batch([torch.ones(2, 3), torch.ones(1, 3)], pad_value=-100)
    assert feats.shape == (2, 2, 3) and bool((feats[1, 1] == -100).all())


def test_unigram_baseline_is_the_add_one_formula():
    train, scored = torch.tensor([0, 0, 1]), torch.tensor([1, 2])
    # counts + 1 over V = 4: (3, 2, 1, 1) / 7
    want = -(math.log(2 / 7) + math.log(1 / 7)) / 2
    assert unigram_cross_entropy(train, scored, 4) == pytest.approx(want)
    # without a vocabulary size, V is the tokens seen in either: 3, so (3, 2, 1) / 6
    want_seen = -(math.log(2 / 6) + math.log(1 / 6)) / 2
    assert unigram_cross_entropy(train + 10, scored + 10) == pytest.approx(want_seen)
