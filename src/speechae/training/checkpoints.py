"""Checkpoints and randomness: what lets an interrupted training run continue exactly.

A checkpoint is written atomically after every epoch; it holds the settings, the weights, the
optimiser, the history, the split and the state of every random generator. Within
:func:`reproducible` torch, NumPy and Python are seeded and deterministic algorithms are used;
the caller's generators are restored after.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch

from speechae.atomic import atomic_path
from speechae.errors import ParameterError
from speechae.training.config import TrainingConfig

__all__ = [
    "CHECKPOINT_FILE",
    "read_checkpoint",
    "reproducible",
    "rng_states",
    "save_checkpoint",
    "set_rng_states",
]

CHECKPOINT_FILE = "last.pt"


@contextlib.contextmanager
def reproducible(device: torch.device, seed: int) -> Iterator[None]:
    """Seed torch, numpy and Python and use deterministic algorithms; the caller's state returns after."""
    numpy_state, python_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.manual_seed(seed)
            np.random.seed(seed)  # noqa: NPY002
            random.seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)


def rng_states(device: torch.device) -> dict[str, object]:
    """The state of every random generator a run uses."""
    numpy_state = np.random.get_state(legacy=False)  # noqa: NPY002
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": numpy_state,
        "python": random.getstate(),
    }


def set_rng_states(states: Mapping[str, object], device: torch.device) -> None:
    """Restore what :func:`rng_states` saved."""
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and states["cuda"] is not None:
        torch.cuda.set_rng_state(states["cuda"], device)
    numpy_state = states["numpy"]
    key = np.array(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state({**numpy_state, "state": {**numpy_state["state"], "key": key}})  # noqa: NPY002
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(state: dict[str, object], target: Path) -> None:
    """Write ``state`` to ``target`` at once."""
    with atomic_path(target) as partial:
        torch.save(state, partial)


def read_checkpoint(target: Path, config: TrainingConfig) -> dict[str, object]:
    """The checkpoint at ``target``, refused when it was made with other settings than ``config``."""
    if not target.is_file():
        raise ParameterError(
            f"--resume (resume=True) but there is no checkpoint {target}; give the output of the "
            "interrupted run or train without resuming"
        )
    state = torch.load(target, map_location="cpu", weights_only=True)
    for key, value in config.to_dict().items():
        if state["config"][key] != value:
            raise ParameterError(
                f"the checkpoint {target} was made with {key}={state['config'][key]!r}, not {value!r}; "
                "resume with the same settings or delete the checkpoint folder to start anew"
            )
    return state
