from __future__ import annotations

import io

from speechae.corpus import ItemResult
from speechae.errors import EmptyAudioError
from speechae.inputs import Item
from speechae.progress import Progress, TrainingProgress, bar, clock


def test_clock_and_bar():
    assert clock(0) == "0:00:00" and clock(3599.6) == "1:00:00"
    assert bar(0.0, width=4) == "[....]" and bar(1.5, width=4) == "[####]"


def test_plain_progress_lines_count_files_failures_and_speed():
    stream = io.StringIO()
    progress = Progress(stream=stream, interval=0)
    progress.start(files=2, seconds=7200.0)
    progress.advance(ItemResult(Item("a", "a"), seconds=3600.0))
    progress.advance(ItemResult(Item("b", "b"), error=EmptyAudioError("b: empty"), seconds=3600.0))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("speechae: [####################] 2/2 files | 1 failed")
    assert "2.00/2.00 h audio" in lines[-1] and "x real time" in lines[-1]


def test_quiet_progress_prints_nothing():
    stream = io.StringIO()
    progress = Progress(stream=stream, quiet=True, interval=0)
    progress.start(files=1, seconds=1.0)
    progress.advance(ItemResult(Item("a", "a"), seconds=1.0))
    assert stream.getvalue() == ""


def test_training_progress_prints_one_line_per_epoch_off_a_terminal():
    stream = io.StringIO()
    progress = TrainingProgress(epochs=3, stream=stream)
    progress(0, 0, 0, float("nan"), 0.5)
    progress(1, 1, 2, 0.4, None)
    progress(1, 2, 2, 0.3, 0.25)
    assert stream.getvalue().splitlines() == [
        "speechae: epoch 0/3 [####################] batch 0/0 | validation loss 0.5",
        "speechae: epoch 1/3 [####################] batch 2/2 | training loss 0.3 | validation loss 0.25",
    ]
