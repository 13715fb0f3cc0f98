"""One batch of a corpus run through the pipeline: every item read, prepared and computed, or failed.

A batch's short items are read and conditioned (:func:`read_item`, in a worker process or here),
their spectrograms computed on the pipeline's device (in a CPU worker when that device is the
CPU), and their windows pushed through the network together, each item with its own BatchNorm
statistics (:meth:`speechae.pipeline.Pipeline.run`). A long item is computed alone, in bounded
memory. Nothing here raises for one item: its result says why it failed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from speechae.allocator import return_free_memory
from speechae.corpus.planning import ItemResult, Planned, describe
from speechae.errors import SpeechaeError
from speechae.frontend import FrontEndConfig, LogMelFrontEnd
from speechae.inputs import Item
from speechae.pipeline import Pipeline, PreparedRecording, check_finite, held_bytes, prepare
from speechae.recordings import Recording, read_recording

__all__ = ["Outcome", "compute_batch", "prepare_item", "read_item"]

#: Batches of at least this many windows (a 4-minute recording) give the memory their reading left
#: free back before the network runs; smaller ones keep it for the next batch, saving page faults.
TRIMMED_BATCH_WINDOWS = 1024

#: What reading an item gives: its recording, its spectrograms (from a CPU worker), or why not.
Outcome = Recording | PreparedRecording | SpeechaeError

_CPU_FRONTENDS: dict[FrontEndConfig, LogMelFrontEnd] = {}


def read_item(
    item: Item, config: FrontEndConfig, resampling: str, lowpass: float | None
) -> Recording | SpeechaeError:
    """The item read and conditioned, or the error that stopped it (never raises)."""
    try:
        return read_recording(
            item.path, start=item.start, end=item.end, config=config, resampling=resampling, lowpass=lowpass
        )
    except Exception as error:  # a corpus run never dies on one file
        return describe(item, error)


def prepare_item(
    item: Item, config: FrontEndConfig, resampling: str, lowpass: float | None
) -> PreparedRecording | SpeechaeError:
    """Worker task: the item read and its spectrograms computed on the CPU (never raises)."""
    recording = read_item(item, config, resampling, lowpass)
    if isinstance(recording, SpeechaeError):
        return recording
    frontend = _CPU_FRONTENDS.setdefault(config, LogMelFrontEnd(config))
    return _prepared(item, recording, lambda r: prepare(r, frontend, memory_budget=sys.maxsize))


def _prepared(item: Item, recording: Recording, prepare_on_device) -> PreparedRecording | SpeechaeError:
    with recording:
        try:
            return prepare_on_device(recording)
        except Exception as error:
            return describe(item, error)


def compute_batch(
    pipeline: Pipeline,
    entries: Sequence[Planned],
    outcomes: Sequence[Outcome | None],
    *,
    chunk_size: int | None,
    memory_budget: int | None,
) -> list[ItemResult]:
    """Results of a batch's entries from what reading each gave (None: a long item, read here)."""
    results, ready = [], []
    for entry, outcome in zip(entries, outcomes, strict=True):
        if outcome is None:
            results.append(_long_item(pipeline, entry, chunk_size, memory_budget))
            continue
        if isinstance(outcome, Recording):
            outcome = _prepared(entry.item, outcome, lambda r: pipeline.prepare(r, memory_budget=sys.maxsize))
        if isinstance(outcome, SpeechaeError):
            results.append(entry.result(error=outcome))
        else:
            ready.append((entry, outcome))
    if ready:
        inputs = [prepared for _, prepared in ready]
        if sum(len(prepared.inputs) for prepared in inputs) >= TRIMMED_BATCH_WINDOWS:
            return_free_memory()  # what reading left free would add to the network's peak
        left = _left_for_network(pipeline, inputs, memory_budget)
        computed = pipeline.run(inputs, chunk_size=chunk_size, memory_budget=left)
        for (entry, prepared), features in zip(ready, computed, strict=True):
            try:
                checked = check_finite(features, entry.item.path)
                results.append(
                    entry.result(features=checked, warnings=prepared.warnings, quality=prepared.quality)
                )
            except SpeechaeError as error:
                results.append(entry.result(error=describe(entry.item, error)))
    return results


def _left_for_network(pipeline: Pipeline, inputs: list[PreparedRecording], memory_budget: int | None) -> int:
    """What the budget leaves the network's kept activations beside the batch's spectrograms.

    Joined into one tensor for the network, they are held twice while it is made.
    """
    budget = pipeline.budget if memory_budget is None else memory_budget
    held = sum(held_bytes(prepared.inputs) for prepared in inputs)
    return max(budget - (2 * held if len(inputs) > 1 else held), 0)


def _long_item(
    pipeline: Pipeline, entry: Planned, chunk_size: int | None, memory_budget: int | None
) -> ItemResult:
    """A recording too long for a shared batch: computed alone, in chunks, in this process."""
    item = entry.item
    try:
        recording = pipeline.read(item.path, start=item.start, end=item.end)
        features = pipeline.features(recording, chunk_size=chunk_size, memory_budget=memory_budget)
    except Exception as error:  # a corpus run never dies on one file
        return entry.result(error=describe(item, error))
    return entry.result(features=features, warnings=recording.warnings, quality=recording.quality)
