"""``load_corpus``: user files, folders and globs as one UTF-8 text, and every way that fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnkit.datasets import CorpusError, join_texts, load_corpus


def write(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def test_a_file_is_read_as_is(tmp_path):
    text = "Ünïcode, tabs\tand CRLF\r\nare kept; no final newline"
    (tmp_path / "c.txt").write_bytes(text.encode("utf-8"))
    assert load_corpus(tmp_path / "c.txt") == text
    assert load_corpus(str(tmp_path / "c.txt")) == text


def test_a_folder_is_read_recursively_sorted_without_hidden_files(tmp_path):
    write(
        tmp_path,
        {
            "b.txt": b"bee\n",
            "a/z.txt": b"zed",  # no final newline: one is put between it and the next file
            "a.md": b"ay\n",
            ".hidden.txt": b"HIDDEN",
            ".git/config": b"HIDDEN",
            "a/.cache/x": b"HIDDEN",
        },
    )
    # Sorted by relative path: "a.md" < "a/z.txt" < "b.txt".
    assert load_corpus(tmp_path) == "ay\nzed\nbee\n"


def test_a_glob_matches_files_sorted(tmp_path):
    write(tmp_path, {"2.txt": b"two\n", "1.txt": b"one\n", "x.md": b"no\n", "d/3.txt": b"three"})
    assert load_corpus(str(tmp_path / "*.txt")) == "one\ntwo\n"
    assert load_corpus(str(tmp_path / "**" / "*.txt")) == "one\ntwo\nthree"


def test_join_texts_puts_a_newline_only_where_one_is_missing():
    assert join_texts(["a", "b\n", "", "c"]) == "a\nb\nc"
    assert join_texts(["only"]) == "only"


def test_byte_order_mark_is_dropped(tmp_path):
    write(tmp_path, {"a.txt": b"\xef\xbb\xbfhello\n", "b.txt": b"\xef\xbb\xbfworld\n"})
    assert load_corpus(tmp_path / "a.txt") == "hello\n"
    assert load_corpus(tmp_path) == "hello\nworld\n"


def test_invalid_utf8_names_the_file_and_the_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("first line\nsecond caf\u00e9\n".encode("latin-1"))
    with pytest.raises(CorpusError) as info:
        load_corpus(path)
    message = str(info.value)
    assert str(path) in message
    assert "byte 0xe9 at offset 21 (line 2, byte 11 of the line)" in message


def test_invalid_utf8_inside_a_folder_names_that_file(tmp_path):
    write(tmp_path, {"good.txt": b"fine\n", "sub/bad.txt": b"ok \xff\n"})
    with pytest.raises(CorpusError, match=r"bad\.txt is not valid utf-8: byte 0xff at offset 3"):
        load_corpus(tmp_path)


def test_a_nul_byte_means_binary(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"text at first\x00\x01\x02")
    with pytest.raises(CorpusError, match=r"model\.bin looks binary \(a NUL byte at offset 13\)"):
        load_corpus(path)


def test_mostly_non_text_means_binary_not_bad_utf8(tmp_path):
    path = tmp_path / "noise.dat"
    path.write_bytes(bytes(range(128, 256)) * 8)  # no NUL, and not one valid UTF-8 character
    with pytest.raises(CorpusError, match=r"noise\.dat looks binary \(1024 of the first 1024"):
        load_corpus(path)


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf"])
def test_an_empty_file_is_an_error(tmp_path, data):
    (tmp_path / "empty.txt").write_bytes(data)
    with pytest.raises(CorpusError, match=r"empty\.txt' is empty"):
        load_corpus(tmp_path / "empty.txt")


def test_nothing_matching_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="not a file, a folder, a glob or a data set name") as e:
        load_corpus(tmp_path / "missing.txt")
    known = str(e.value).split("known data sets: ")[1]
    assert {"python-stdlib", "shakespeare"} <= set(known.replace(")", "").split(", "))
    with pytest.raises(CorpusError, match=r"the glob .*\*\.txt' matches no files"):
        load_corpus(str(tmp_path / "*.txt"))
    (tmp_path / "only-hidden").mkdir()
    (tmp_path / "only-hidden" / ".x").write_text("hidden")
    with pytest.raises(CorpusError, match="holds no \\(non-hidden\\) files"):
        load_corpus(tmp_path / "only-hidden")


def test_corpus_errors_are_value_errors(tmp_path):
    with pytest.raises(ValueError):
        load_corpus(tmp_path / "missing.txt")


def test_python_stdlib_loads_the_standard_library():
    text = load_corpus("python-stdlib")
    assert len(text) > 1_000_000
    assert Path(json.__file__).read_text(encoding="utf-8") in text
    assert "site-packages" not in Path(json.__file__).parent.as_posix()


def test_a_data_set_name_wins_over_a_same_named_folder_unless_written_as_a_path(
    tmp_path, monkeypatch
):
    write(tmp_path, {"python-stdlib/mine.txt": b"my own text\n"})
    monkeypatch.chdir(tmp_path)
    assert load_corpus("./python-stdlib") == "my own text\n"
    assert load_corpus(Path("python-stdlib")) == "my own text\n"
    assert len(load_corpus("python-stdlib")) > 1_000_000
