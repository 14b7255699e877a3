"""OneToMany and the generate task: conditioning works, decoders agree, bad tables are named."""

from __future__ import annotations

import random

import pytest
import torch

import rnnkit
from rnnkit.architectures.one_to_many import OneToMany, OneToManyState
from rnnkit.cli.main import main
from rnnkit.datasets.tables import TableError
from rnnkit.decoding import SamplingConfig, beam_search, generate
from rnnkit.tasks.generate.run import generate_texts
from rnnkit.tasks.generate.task import (
    GenerateDataConfig,
    GenerateModelConfig,
    GenerateTask,
    read_table,
)
from rnnkit.training import TrainConfig, Trainer

ALPHABETS = {"ab": "ab", "xyz": "xyz", "mn": "mn"}


def table_rows(n=600, seed=0):
    """Words over a different alphabet per condition: the condition decides the letters."""
    r = random.Random(seed)
    rows = []
    for _ in range(n):
        condition = r.choice(sorted(ALPHABETS))
        rows.append(
            (condition, "".join(r.choice(ALPHABETS[condition]) for _ in range(r.randint(3, 7))))
        )
    return rows


def write_csv(path, rows, header="kind,word"):
    path.write_text(header + "\n" + "".join(f"{c},{t}\n" for c, t in rows))
    return path


@pytest.mark.parametrize("init_state,feed", [(True, False), (False, True), (True, True)])
def test_generator_learns_to_follow_its_condition(tmp_path, init_state, feed):
    torch.set_num_threads(1)
    task = GenerateTask(
        GenerateModelConfig(hidden_size=48, embedding_size=16, init_state=init_state, feed=feed),
        GenerateDataConfig(data="-", condition_col="kind", target_col="word"),
        table_rows(),
        batch_size=32,
    )
    cfg = TrainConfig(
        out=str(tmp_path / "run"),
        max_steps=120,
        lr=1e-2,
        warmup_steps=10,
        eval_every=120,
        checkpoint_every=120,
        progress=False,
    )
    result = Trainer(task, cfg).run()
    assert result.last_val["loss"] < 0.8 * result.last_val["unigram_loss"]
    model = task.build_model()
    model.load_state_dict({k.removeprefix("model."): v for k, v in _best(tmp_path / "run").items()})
    hits = total = 0
    for condition, alphabet in ALPHABETS.items():
        words = generate_texts(
            model, task.vocab, task.conditions, condition, num=40, sampling=SamplingConfig(seed=1)
        )
        letters = "".join(words)
        hits += sum(ch in alphabet for ch in letters)
        total += len(letters)
    # letters of the wrong alphabet would be ~2/3 of them if the condition were ignored
    assert total > 0 and hits / total > 0.95


def _best(run_dir):
    from rnnkit.training import checkpoint as ckpt

    tensors, _ = ckpt.load(run_dir / "best.safetensors")
    return tensors


def small_model(cell="lstm", **kwargs):
    torch.manual_seed(0)
    return OneToMany(12, num_conditions=3, hidden_size=16, embedding_size=8, cell=cell, **kwargs)


@pytest.mark.parametrize("cell", ["lstm", "gru", rnnkit.LayerNormLSTMCell])
def test_beam_of_width_one_is_greedy_and_batches_decode_as_items(cell):
    model = small_model(cell, num_layers=2)
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
    for beam in (1, 3):
        batch = generate(model, conditions, beam=beam, max_length=12)
        for row in range(4):
            assert (
                generate(model, conditions[row : row + 1], beam=beam, max_length=12)[0]
                == batch[row]
            )


def test_sampling_is_seeded_and_top_k_1_is_greedy():
    model = small_model()
    conditions = torch.tensor([0, 2, 2])
    a = generate(model, conditions, sampling=SamplingConfig(seed=3, temperature=1.5))
    b = generate(model, conditions, sampling=SamplingConfig(seed=3, temperature=1.5))
    assert a == b
    assert generate(model, conditions, sampling=SamplingConfig(top_k=1)) == generate(
        model, conditions
    )


def test_feature_vector_input():
    torch.manual_seed(0)
    model = OneToMany(10, condition_size=5, hidden_size=8, embedding_size=4, cell="gru")
    logits = model(torch.randn(3, 5), torch.randint(4, 10, (3, 6)))
    assert logits.shape == (3, 6, 10)
    assert len(generate(model, torch.randn(2, 5), beam=2, max_length=5)) == 2
    with pytest.raises(ValueError, match="exactly one"):
        OneToMany(10, num_conditions=2, condition_size=5)


def test_table_errors_name_the_problem(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("a", "xx")])
    with pytest.raises(TableError, match="--target-col 'text': no such column"):
        read_table(str(path), "kind", "text")
    path.write_text("kind,word\na,xx\nb,\n")
    with pytest.raises(TableError, match="line 3: the 'word' value is empty"):
        read_table(str(path), "kind", "word")
    with pytest.raises(TableError, match="no such file"):
        read_table(str(tmp_path / "none.csv"), "kind", "word")


def test_cli_train_sample_and_unseen_condition(tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", table_rows(200))
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "generate",
                "--data",
                str(data),
                "--condition-col",
                "kind",
                "--target-col",
                "word",
                "--out",
                str(run),
                "--max-steps",
                "5",
                "--hidden-size",
                "16",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["sample", str(run), "--condition", "xyz", "--num-samples", "4"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert main(["sample", str(run), "--condition", "klingon"]) == 2
    err = capsys.readouterr().err
    assert "'klingon' was not seen in training" in err and "xyz" in err
    assert main(["evaluate", str(run), "--json"]) == 0
    assert '"unigram_loss"' in capsys.readouterr().out
