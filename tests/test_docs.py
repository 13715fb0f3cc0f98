"""Every example on the documentation site runs as written.

Each page's ``sh`` and ``python`` code blocks run in order, in a fresh folder that holds the
committed example recording (``example.wav``), a small corpus of speakers cut from it
(``corpus/spk01/a.wav`` ... with ``labels.csv`` and ``manifest.csv`` beside it, see
:func:`workspace`), so a later block may use what an earlier one wrote. A block right after a
``<!-- not run: REASON -->`` line is left out (a GPU, a real cluster, a long training, an
install from outside), and so are blocks in other languages (``text``, ``toml``, output).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import EXAMPLE, REPO

DOCS = REPO / "docs"
PAGES = sorted(path for path in DOCS.rglob("*.md"))
BLOCK = re.compile(
    r"(?:<!-- not run: (?P<reason>[^>]*?) -->\s*\n)?^```(?P<language>[\w-]*)[^\n]*\n(?P<code>.*?)^```",
    re.M | re.S,
)
RUN = {"sh", "bash", "python"}

pytestmark = pytest.mark.weights


def code_blocks(page: Path) -> list[tuple[str, str, str | None]]:
    """``(language, code, reason not run)`` of every fenced block of ``page``, in order."""
    text = page.read_text()
    return [(m["language"], m["code"], m["reason"]) for m in BLOCK.finditer(text)]


def workspace(folder: Path) -> Path:
    """A folder with ``example.wav`` and ``corpus/``: 6 speakers x 2 takes cut from it, with labels."""
    shutil.copy(EXAMPLE, folder / "example.wav")
    samples, rate = sf.read(EXAMPLE)
    rows = []
    for speaker in range(1, 7):
        for take, offset in (("a", 0.0), ("b", 0.4)):
            excerpt = np.roll(samples, int((speaker * 0.31 + offset) * rate))
            if speaker % 2:  # one class a little muffled, so that there is something to find
                excerpt = np.convolve(excerpt, np.ones(4) / 4, mode="same")
            path = folder / "corpus" / f"spk{speaker:02d}" / f"{take}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, excerpt, rate, subtype="PCM_16")
            rows.append({"file": f"spk{speaker:02d}/{take}.wav", "speaker": f"spk{speaker:02d}",
                         "diagnosis": "pd" if speaker % 2 else "hc", "age": 50 + 3 * speaker})  # fmt: skip
    labels = pd.DataFrame(rows)
    labels.to_csv(folder / "corpus" / "labels.csv", index=False)
    manifest = pd.DataFrame({"file": labels["file"], "start": 0.5, "end": 3.0})
    manifest.to_csv(folder / "corpus" / "manifest.csv", index=False)
    return folder


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(DOCS)) for page in PAGES])
def test_every_example_on_the_page_runs(page, tmp_path, monkeypatch):
    blocks = [
        (language, code) for language, code, reason in code_blocks(page) if language in RUN and not reason
    ]
    if not blocks:
        pytest.skip("no example to run on this page")
    folder = workspace(tmp_path)
    monkeypatch.chdir(folder)
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    namespace: dict[str, object] = {"__name__": "__main__"}
    for number, (language, code) in enumerate(blocks, start=1):
        where = f"{page.relative_to(REPO)}, example {number}"
        if language == "python":
            exec(compile(code, where, "exec"), namespace)
            continue
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            capture_output=True,
            text=True,
            env=environment,
            timeout=600,
        )
        assert result.returncode == 0, f"{where} failed:\n{code}\n{result.stdout}\n{result.stderr}"


def test_every_example_left_out_says_why():
    unexplained = [
        page.name
        for page in PAGES
        for _, _, reason in code_blocks(page)
        if reason is not None and not reason.strip()
    ]
    assert unexplained == []
