"""How close exact mode is to the parity tolerances on the shared corpus, per part and model.

Prints, for the CAE and the RAE, the worst ratio |ours - reference| / (atol + rtol * |reference|)
over all shared recordings for the static features, the bottlenecks and the errors (1.0 = at the
tolerance of ../shared/parity/README.md) and the recording where it occurs. Run it after any
change to the numerics: the parity tests only say pass or fail.

usage: python benchmarks/parity_margin.py [--precision bf16]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from speechae import Extractor

SHARED = Path(__file__).resolve().parents[2] / "shared"
TOLERANCES = {"static": (1e-4, 1e-4), "bottleneck": (1e-5, 0.0), "error": (1e-9, 1e-4)}


def worst_ratio(ours: np.ndarray, reference: np.ndarray, tolerance: tuple[float, float]) -> float:
    ours, reference = ours.astype(np.float64), reference.astype(np.float64)
    compared = ~(np.isnan(ours) & np.isnan(reference))
    if not compared.any():
        return 0.0
    atol, rtol = tolerance
    excess = np.abs(ours - reference)[compared] / (atol + rtol * np.abs(reference[compared]))
    return float(np.nanmax(excess))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    precision = parser.parse_args().precision
    manifest = json.loads((SHARED / "parity" / "manifest.json").read_text())["files"]
    warnings.simplefilter("ignore")  # single-window recordings warn about NaN statistics
    for model in ("CAE", "RAE"):
        extractor = Extractor(f"{model.lower()}-256", precision=precision)
        worst = {part: (0.0, "") for part in TOLERANCES}
        for entry in manifest:
            if "npz" not in entry[model]:
                continue
            reference = np.load(SHARED / "parity" / entry[model]["npz"])
            features = extractor.file_features(SHARED / "corpus" / entry["file"])
            width = features.bottleneck.shape[1]
            parts = {
                "static": (features.static, reference["static"]),
                "bottleneck": (features.bottleneck, reference["dynamic"][:, :width]),
                "error": (features.error, reference["dynamic"][:, width:]),
            }
            for part, (ours, expected) in parts.items():
                ratio = worst_ratio(ours, expected, TOLERANCES[part])
                if ratio > worst[part][0]:
                    worst[part] = (ratio, entry["file"])
        for part, (ratio, name) in worst.items():
            print(f"{model} {part:10s} worst {ratio:8.3f} of the tolerance  ({name})")


if __name__ == "__main__":
    main()
