"""How far the fast ``--precision bf16`` mode is from DisVoice's numbers on the shared corpus.

For every recording of ../shared/parity and both models, prints the worst deviation from the
reference in units of the parity tolerance (1.0 = at the tolerance) and as absolute values, and
the correlation of the static features with the reference across all files.

usage: python benchmarks/bf16_deviation.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speechae import Extractor

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    manifest = json.loads((SHARED / "parity" / "manifest.json").read_text())["files"]
    for model in ("CAE", "RAE"):
        fast = Extractor(f"{model.lower()}-256", precision="bf16")
        worst = {"bottleneck_abs": 0.0, "error_rel": 0.0, "static_tolerances": 0.0}
        ours, references = [], []
        for entry in manifest:
            if "npz" not in entry[model]:
                continue
            reference = np.load(SHARED / "parity" / entry[model]["npz"])
            features = fast.file_features(SHARED / "corpus" / entry["file"])
            dynamic = reference["dynamic"]
            worst["bottleneck_abs"] = max(
                worst["bottleneck_abs"], float(np.abs(features.bottleneck - dynamic[:, :256]).max())
            )
            relative = np.abs(features.error - dynamic[:, 256:]) / np.abs(dynamic[:, 256:])
            worst["error_rel"] = max(worst["error_rel"], float(relative.max()))
            static = features.static
            excess = np.abs(static - reference["static"]) / (1e-4 + 1e-4 * np.abs(reference["static"]))
            worst["static_tolerances"] = max(worst["static_tolerances"], float(np.nanmax(excess)))
            finite = np.isfinite(reference["static"])
            ours.append(static[finite])
            references.append(reference["static"][finite])
        correlation = float(np.corrcoef(np.concatenate(ours), np.concatenate(references))[0, 1])
        print(
            json.dumps(
                {
                    "model": model,
                    **{k: round(v, 6) for k, v in worst.items()},
                    "static_correlation": correlation,
                }
            )
        )


if __name__ == "__main__":
    main()
