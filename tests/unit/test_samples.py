"""The demo's sample archive: a deterministic mix of documents of a target size, K of them bad."""

from __future__ import annotations

import hashlib
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from chalicelib.errors import PermanentError
from chalicelib.processors.documents import extract_document
from chute_cli.samples import KINDS, MIB, SampleInfo, ensure_documents_zip, make_documents_zip
from tests.unit.test_documents import context


def processor_rejects(data: bytes, name: str) -> bool:
    try:
        extract_document(context(data, name))
    except PermanentError:
        return True
    return False


def suffix(name: str) -> str:
    return name.rsplit(".", 1)[1]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleInfo:
    path = tmp_path_factory.mktemp("samples") / "docs.zip"
    return make_documents_zip(path, files=60, size_mb=4, corrupt=7, seed=3)


def test_members_are_an_even_mix_of_the_six_document_types(sample: SampleInfo) -> None:
    with zipfile.ZipFile(sample.path) as archive:
        assert tuple(archive.namelist()) == sample.members
    assert len(sample.members) == 60
    assert Counter(suffix(name) for name in sample.members) == dict.fromkeys(KINDS, 10)
    assert len(set(sample.members)) == 60


def test_archive_size_is_within_ten_percent_of_the_target(sample: SampleInfo) -> None:
    assert sample.bytes == sample.path.stat().st_size
    assert 0.9 * 4 * MIB <= sample.bytes <= 1.1 * 4 * MIB


def test_text_is_deflated_and_pdfs_are_stored(sample: SampleInfo) -> None:
    with zipfile.ZipFile(sample.path) as archive:
        for info in archive.infolist():
            expected = (
                zipfile.ZIP_STORED if info.filename.endswith(".pdf") else zipfile.ZIP_DEFLATED
            )
            assert info.compress_type == expected, info.filename
        assert archive.testzip() is None


def test_exactly_the_corrupt_members_are_rejected_by_the_document_processor(
    sample: SampleInfo,
) -> None:
    with zipfile.ZipFile(sample.path) as archive:
        rejected = [name for name in sample.members if processor_rejects(archive.read(name), name)]
    assert rejected == list(sample.corrupt_names)
    assert len(rejected) == 7
    assert {suffix(name) for name in rejected} == {"pdf"}


def test_corrupt_json_makes_up_for_too_few_pdfs(tmp_path: Path) -> None:
    info = make_documents_zip(tmp_path / "d.zip", files=12, size_mb=0.2, corrupt=3, seed=1)
    assert Counter(suffix(name) for name in info.corrupt_names) == {"pdf": 2, "json": 1}
    with zipfile.ZipFile(info.path) as archive:
        for name in info.members:
            assert processor_rejects(archive.read(name), name) == (name in info.corrupt_names)


def test_more_corrupt_members_than_pdfs_and_jsons_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most 4 of 12"):
        make_documents_zip(tmp_path / "d.zip", files=12, size_mb=0.2, corrupt=5)
    assert not (tmp_path / "d.zip").exists()


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    first = make_documents_zip(tmp_path / "a.zip", files=18, size_mb=0.5, corrupt=2, seed=7)
    again = make_documents_zip(tmp_path / "b.zip", files=18, size_mb=0.5, corrupt=2, seed=7)
    other = make_documents_zip(tmp_path / "c.zip", files=18, size_mb=0.5, corrupt=2, seed=8)
    assert digest(first.path) == digest(again.path)
    assert (first.members, first.corrupt_names) == (again.members, again.corrupt_names)
    assert digest(first.path) != digest(other.path)


def test_a_size_too_small_for_the_count_still_writes_every_document(tmp_path: Path) -> None:
    info = make_documents_zip(tmp_path / "tiny.zip", files=30, size_mb=0.001, corrupt=0)
    with zipfile.ZipFile(info.path) as archive:
        assert all(archive.read(name) for name in info.members)
        assert not [n for n in info.members if processor_rejects(archive.read(n), n)]


def test_ensure_reuses_an_archive_made_with_the_same_parameters(tmp_path: Path) -> None:
    made, reused = ensure_documents_zip(tmp_path, files=6, size_mb=0.1, corrupt=1, seed=2)
    assert not reused
    again, reused = ensure_documents_zip(tmp_path, files=6, size_mb=0.1, corrupt=1, seed=2)
    assert reused
    assert again == made
    _, reused = ensure_documents_zip(tmp_path, files=6, size_mb=0.1, corrupt=1, seed=3)
    assert not reused


def test_ensure_regenerates_an_archive_that_does_not_match_its_record(tmp_path: Path) -> None:
    made, _ = ensure_documents_zip(tmp_path, files=6, size_mb=0.1, corrupt=1)
    made.path.write_bytes(b"truncated")
    again, reused = ensure_documents_zip(tmp_path, files=6, size_mb=0.1, corrupt=1)
    assert not reused
    assert again.bytes == made.bytes == again.path.stat().st_size
