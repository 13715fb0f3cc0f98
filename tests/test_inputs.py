from __future__ import annotations

import shutil

import pytest

from conftest import EXAMPLE
from speechae.inputs import collect_items


def test_a_list_file_may_start_with_a_byte_order_mark_and_names_may_hold_a_hash(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "take#1.wav")
    shutil.copy(EXAMPLE, tmp_path / "b.wav")
    (tmp_path / "list.txt").write_text("take#1.wav\n# a comment line\n\n  b.wav  \n", encoding="utf-8-sig")
    items, failures = collect_items([tmp_path / "list.txt"], root=tmp_path)
    assert [item.key for item in items] == ["b.wav", "take#1.wav"] and failures == []


def test_a_manifest_may_start_with_a_byte_order_mark(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text("file,start\na.wav,0.5\n", encoding="utf-8-sig")
    items, failures = collect_items([tmp_path / "m.csv"], root=tmp_path)
    assert [(item.key, item.start) for item in items] == [("a.wav", 0.5)] and failures == []


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.csv", b"", "the manifest is empty (it needs a 'file' column)"),
        ("header.csv", b"file,start,end\n", "the manifest names no audio files"),
        ("header.parquet", None, "the manifest names no audio files"),
        ("quote.csv", b'file\n"a.wav\n', "not a readable manifest (Error tokenizing data."),
        ("bad.parquet", b"PAR1 not really PAR1", "not a readable manifest ("),
        ("bad.tsv", b"\xff\xfe\x00", "not a readable manifest ("),
        ("comments.txt", b"# only a comment\n\n", "the list file names no audio files"),
    ],
)
def test_a_manifest_or_list_that_gives_no_items_is_a_failure_beside_the_other_inputs(
    tmp_path, name, content, reason
):
    import pandas as pd

    manifest = tmp_path / name
    if content is None:
        pd.DataFrame({"file": pd.Series([], dtype=str)}).to_parquet(manifest)
    else:
        manifest.write_bytes(content)
    items, failures = collect_items([manifest, EXAMPLE])
    assert [item.path for item in items] == [str(EXAMPLE)]
    assert len(failures) == 1 and failures[0][0] == str(manifest)
    assert failures[0][1].startswith(f"{manifest}: ") and reason in failures[0][1]


def test_random_manifests_and_lists_give_items_or_listed_failures(tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from speechae.errors import SpeechaeError

    cells = st.text(alphabet=st.sampled_from([*list('ab.wav#," \t\n\r\ufeff\\/-0123456789e+'), "\x00", "é"]))

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        text=st.one_of(cells, st.lists(cells, max_size=5).map("\n".join)),
        header=st.sampled_from(["", "file\n", "file,start,end\n", "file\tstart\n", "start\n"]),
        suffix=st.sampled_from([".csv", ".tsv", ".txt", ".lst", ".parquet"]),
        raw=st.binary(max_size=256),
    )
    def check(text, header, suffix, raw):
        listing = tmp_path / f"inputs{suffix}"
        if suffix == ".parquet":
            listing.write_bytes(raw)
        else:
            listing.write_text(header + text, encoding="utf-8", errors="surrogateescape")
        try:
            items, failures = collect_items([listing], root=tmp_path)
        except SpeechaeError:  # only a bad root raises; each input's failure is listed
            raise AssertionError("collect_items raised for one input") from None
        assert items or [given for given, _ in failures] == [str(listing)]
        for item in items:
            assert isinstance(item.path, str) and (item.start is None or isinstance(item.start, float))

    check()
