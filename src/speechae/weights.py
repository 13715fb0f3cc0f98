"""Registry, download, verification and caching of autoencoder weights.

The pretrained models are DisVoice 0.1.10's ``256_CAE.pt`` and ``256_RAE.pt``. On first use they
are taken out of the ``disvoice==0.1.10`` wheel, which ``pip download`` fetches from the package
index pip is configured for; their sha256 is checked, they are read with
``torch.load(weights_only=True)`` (no pickled code runs) and cached as safetensors in the user
cache folder (``SPEECHAE_CACHE_DIR`` overrides it).

Example:
    >>> sorted(PRETRAINED)
    ['cae-256', 'rae-256']
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from speechae.atomic import atomic_path
from speechae.errors import (
    ModelError,
    ParameterError,
    UnknownModelError,
    WeightsFetchError,
    WeightsIntegrityError,
)
from speechae.frontend import DEFAULT_FRONTEND, frontend_config
from speechae.models import architecture_from_state_dict, build_autoencoder

__all__ = [
    "PRETRAINED",
    "ListedModel",
    "LoadedModel",
    "PretrainedModel",
    "cache_dir",
    "fetch",
    "import_weights",
    "list_models",
    "load_model",
    "model_info",
    "models_dir",
    "save_weights",
    "weights_digest",
]

SOURCE_PACKAGE = "disvoice==0.1.10"
SOURCE_WHEEL_SHA256 = "28cfa663a1987a06c4f62f20270e63e5fe44fdd73ab814dcce8aba7b390b51c1"
CACHE_ENV = "SPEECHAE_CACHE_DIR"


@dataclass(frozen=True)
class PretrainedModel:
    """A named pretrained model and where its weights come from."""

    name: str
    architecture: str
    bottleneck: int
    wheel_member: str
    sha256: str
    #: :func:`weights_digest` of the tensors, checked whenever the cached file is loaded.
    tensors_sha256: str
    description: str


PRETRAINED: dict[str, PretrainedModel] = {
    spec.name: spec
    for spec in (
        PretrainedModel(
            "cae-256",
            "cae",
            256,
            "disvoice/replearning/256_CAE.pt",
            "72ba1da24dd2f7bf47563143369ee05afb2ee92397e3b34153e4977215fe991d",
            "43ca68065ea4c5e69eb1de41c45355ae7e6459a7b784a29822ce0c44219c850e",
            "DisVoice 0.1.10 convolutional autoencoder, 256-unit bottleneck (CIEMPIESS Spanish)",
        ),
        PretrainedModel(
            "rae-256",
            "rae",
            256,
            "disvoice/replearning/256_RAE.pt",
            "bd2ea41f6eca66b831dcdc9a94ab6ca52d4ee469a44d9041fb80eb85043adfe5",
            "63af32e1ca39528d3b6707a3cb569b83d34bb088a173e1d3c08961ace54890ff",
            "DisVoice 0.1.10 recurrent autoencoder, 256-unit bottleneck (CIEMPIESS Spanish)",
        ),
    )
}
_BY_SHA256 = {spec.sha256: spec for spec in PRETRAINED.values()}


@dataclass
class LoadedModel:
    """An autoencoder ready to run, with what identifies its weights."""

    name: str
    architecture: str
    bottleneck: int
    network: nn.Module
    weights_sha256: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class ListedModel:
    """A model that :func:`list_models` shows: registered, or imported into the cache."""

    name: str
    architecture: str
    bottleneck: str
    cached: bool
    description: str


def list_models() -> list[ListedModel]:
    """The registered models (cached or not), then the models imported into the cache.

    Example:
        >>> [model.name for model in list_models()][:2]
        ['cae-256', 'rae-256']
    """
    folder = models_dir()
    listed = [
        ListedModel(
            spec.name,
            spec.architecture,
            str(spec.bottleneck),
            (folder / f"{spec.name}.safetensors").is_file(),
            spec.description,
        )
        for spec in PRETRAINED.values()
    ]
    for name in sorted(path.stem for path in folder.glob("*.safetensors") if path.stem not in PRETRAINED):
        metadata = stored_metadata(folder / f"{name}.safetensors")
        architecture, bottleneck = metadata.get("architecture", "?"), metadata.get("bottleneck", "?")
        listed.append(
            ListedModel(name, architecture, bottleneck, True, f"imported (speechae models info {name})")
        )
    return listed


def cache_dir() -> Path:
    """Folder where converted weights are kept (``$SPEECHAE_CACHE_DIR`` or the user cache).

    Example:
        >>> cache_dir().name in ("speechae", os.environ.get(CACHE_ENV, "x").split(os.sep)[-1])
        True
    """
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("speechae", appauthor=False))


def models_dir() -> Path:
    """The folder of cached and imported models (``speechae models list`` shows it)."""
    return cache_dir() / "models"


def _cached_path(name: str) -> Path:
    return models_dir() / f"{name}.safetensors"


def _writable_cache() -> None:
    """Refuse a cache folder that cannot take files, before anything is downloaded."""
    folder = models_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise ModelError(
            f"{folder}: cannot keep models there ({error.strerror or error}); "
            f"set {CACHE_ENV} to a writable folder"
        ) from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _how_to_import() -> str:
    return (
        f"download the {SOURCE_PACKAGE} wheel on a machine with internet access "
        f"(python -m pip download --no-deps {SOURCE_PACKAGE}), copy it here and run "
        "'speechae models import disvoice-0.1.10-py3-none-any.whl' "
        "(or import 256_CAE.pt / 256_RAE.pt from it directly)"
    )


def _download_wheel(folder: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
        SOURCE_PACKAGE,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise WeightsFetchError(
            f"could not run pip to fetch the weights ({error}); {_how_to_import()}"
        ) from None
    wheels = sorted(folder.glob("disvoice-0.1.10-*.whl"))
    if result.returncode != 0 or not wheels:
        reason = (result.stderr.strip().splitlines() or ["no wheel was downloaded"])[-1]
        raise WeightsFetchError(
            f"could not download {SOURCE_PACKAGE} with pip ({reason}); {_how_to_import()}"
        )
    return wheels[0]


def _state_dict_from_bytes(data: bytes, origin: str) -> dict[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():  # advice to torch's developers, not to our users
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for bad files
        # torch's own message advises weights_only=False, which would run the file's code
        raise WeightsIntegrityError(
            f"{origin}: not a loadable PyTorch state dict ({type(error).__name__}): it is not a "
            "PyTorch file, or it pickles objects other than tensors (e.g. a whole model); give "
            "the file of model.state_dict() instead"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsIntegrityError(f"{origin}: does not hold a state dict of tensors")
    return state


def save_weights(state: dict[str, torch.Tensor], target: Path, metadata: dict[str, str]) -> None:
    """Write a state dict and its string metadata to a safetensors file, atomically.

    Example:
        >>> import tempfile
        >>> from speechae.models import RecurrentAutoencoder
        >>> path = Path(tempfile.mkdtemp()) / "rae.safetensors"
        >>> save_weights(RecurrentAutoencoder(8).state_dict(), path, {"architecture": "rae"})
        >>> model_info(path)["bottleneck"]
        '8'
    """
    from safetensors.torch import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.contiguous() for key, value in state.items()}
    with atomic_path(target) as partial:
        save_file(tensors, str(partial), metadata=metadata)
        os.chmod(partial, 0o644)  # safetensors writes 0600; a shared cache is read by others


def _metadata(state: dict[str, torch.Tensor], source_sha256: str, source: str) -> dict[str, str]:
    from speechae.version import __version__

    architecture, bottleneck = architecture_from_state_dict(state)
    return {
        "architecture": architecture,
        "bottleneck": str(bottleneck),
        "min_scaler": repr(DEFAULT_FRONTEND.min_scaler),
        "max_scaler": repr(DEFAULT_FRONTEND.max_scaler),
        "source": source,
        "source_sha256": source_sha256,
        "speechae_version": __version__,
    }


def _install_pretrained(spec: PretrainedModel, data: bytes, source: str) -> Path:
    digest = _sha256(data)
    if digest != spec.sha256:
        raise WeightsIntegrityError(
            f"{source}: sha256 {digest} differs from the expected {spec.sha256} for {spec.name}"
        )
    state = _state_dict_from_bytes(data, source)
    target = _cached_path(spec.name)
    save_weights(state, target, _metadata(state, digest, source))
    return target


def _install_from_wheel(wheel: Path, names: list[str]) -> dict[str, Path]:
    installed = {}
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name in names:
                spec = PRETRAINED[name]
                data = archive.read(spec.wheel_member)
                installed[name] = _install_pretrained(spec, data, f"{wheel.name}:{spec.wheel_member}")
    except (zipfile.BadZipFile, KeyError) as error:
        raise WeightsIntegrityError(f"{wheel}: not a DisVoice 0.1.10 wheel ({error})") from None
    return installed


def fetch(name: str, *, force: bool = False) -> Path:
    """Make sure the pretrained model ``name`` is in the cache and return its path.

    Raises:
        UnknownModelError: ``name`` is not a registered model.
        WeightsFetchError: the download failed (the message says how to import by hand).
        WeightsIntegrityError: the downloaded file has the wrong checksum.
    """
    spec = _pretrained(name)
    target = _cached_path(spec.name)
    if target.exists() and not force:
        return target
    _writable_cache()
    with tempfile.TemporaryDirectory(prefix="speechae-fetch-") as tmp:
        wheel = _download_wheel(Path(tmp))
        return _install_from_wheel(wheel, list(PRETRAINED))[spec.name]


def import_weights(
    path: str | os.PathLike[str], *, name: str | None = None, replace: bool = False
) -> list[Path]:
    """Import weights from a DisVoice wheel, a ``.pt`` state dict or a ``.safetensors`` file.

    A ``.pt`` whose checksum is a registered model's is installed under that model's name; any
    other weights under ``name`` (default: the file's stem).

    Returns:
        the cached files written.

    Raises:
        ModelError: ``name`` is a pretrained model's and the weights are not its own, or another
            model of that name is imported already (unless ``replace``).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such weights file")
    _writable_cache()
    if path.suffix == ".whl":
        return list(_install_from_wheel(path, list(PRETRAINED)).values())
    if path.suffix == ".safetensors":
        state, metadata = _read_safetensors(path)
    else:
        data = path.read_bytes()
        digest = _sha256(data)
        if digest in _BY_SHA256 and name is None:
            return [_install_pretrained(_BY_SHA256[digest], data, path.name)]
        state = _state_dict_from_bytes(data, str(path))
        metadata = _metadata(state, digest, path.name)
    target = _import_target(name or path.stem, weights_digest(state), replace)
    save_weights(state, target, metadata)
    return [target]


def _import_target(name: str, digest: str, replace: bool) -> Path:
    """Where weights of tensor digest ``digest`` are imported as ``name``, if they may be."""
    if name in PRETRAINED and digest != PRETRAINED[name].tensors_sha256:
        raise ModelError(
            f"{name} is the name of a pretrained model and these weights are not its own; "
            "import them under another name (--name)"
        )
    target = _cached_path(name)
    if target.exists() and not replace and name not in PRETRAINED:
        try:
            same = weights_digest(_read_safetensors(target)[0]) == digest
        except ModelError:  # a damaged file of that name is replaced
            same = False
        if not same:
            raise ModelError(
                f"a model named {name} is imported already ({target}); choose another name "
                "(--name) or replace it (--replace)"
            )
    return target


def stored_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of a ``.safetensors`` file, read from its header alone (empty if unreadable).

    Example:
        >>> stored_metadata("no/such/model.safetensors")
        {}
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError):
        return {}


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise WeightsIntegrityError(f"{path}: not a readable safetensors file ({error})") from None
    architecture, bottleneck = architecture_from_state_dict(state)
    claimed = (metadata.get("architecture", architecture), metadata.get("bottleneck", str(bottleneck)))
    if claimed != (architecture, str(bottleneck)):
        raise WeightsIntegrityError(
            f"{path}: its metadata describes a {claimed[0]} with a {claimed[1]}-unit bottleneck, "
            f"its tensors a {architecture} with {bottleneck}"
        )
    metadata.update(architecture=architecture, bottleneck=str(bottleneck))
    try:
        frontend_config(metadata)
    except ParameterError as error:
        raise WeightsIntegrityError(f"{path}: {error}") from None
    return state, metadata


def _pretrained(name: str) -> PretrainedModel:
    if name not in PRETRAINED:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(sorted(PRETRAINED))} "
            "(or give the path of a .pt or .safetensors file)"
        )
    return PRETRAINED[name]


def _resolve(model: str | os.PathLike[str]) -> Path:
    text = os.fspath(model)
    if text in PRETRAINED:
        return fetch(text)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    imported = _cached_path(text)
    if imported.is_file():
        return imported
    raise UnknownModelError(
        f"unknown model {text!r}: not a registered name ({', '.join(sorted(PRETRAINED))}), "
        "an imported model, or an existing .pt/.safetensors file"
    )


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of the tensors themselves, the same whichever file format holds them.

    Example:
        >>> from speechae.models import RecurrentAutoencoder
        >>> len(weights_digest(RecurrentAutoencoder(8).state_dict()))
        64
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _load_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if path.suffix == ".safetensors":
        state, metadata = _read_safetensors(path)
    else:
        data = path.read_bytes()
        state = _state_dict_from_bytes(data, str(path))
        metadata = _metadata(state, _sha256(data), path.name)
    _check_finite(state, path)
    return state, metadata


def _check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights with NaN or infinite values: every feature computed with them would be too."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise WeightsIntegrityError(
                f"{path}: {bad} of the {tensor.numel()} values of {key} are not finite"
            )


def _network(state: dict[str, torch.Tensor], path: Path) -> nn.Module:
    """The autoencoder of ``state``; weights that do not fit it name their file."""
    try:
        return build_autoencoder(state)
    except WeightsIntegrityError as error:
        raise WeightsIntegrityError(f"{path}: {error}") from None


def model_info(model: str | os.PathLike[str]) -> dict[str, str]:
    """Metadata of a registered, imported or local model (fetching a registered one if needed).

    Example:
        >>> model_info("cae-256")["architecture"]  # doctest: +SKIP
        'cae'
    """
    path = _resolve(model)
    state, metadata = _load_state(path)
    parameters = sum(
        tensor.numel()
        for key, tensor in state.items()
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    return {
        "path": str(path),
        **metadata,
        "parameters": str(parameters),
        "weights_sha256": weights_digest(state),
    }


def load_model(model: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model by registry name or from a ``.pt``/``.safetensors`` path onto ``device``.

    Example:
        >>> loaded = load_model("cae-256")  # doctest: +SKIP
        >>> loaded.bottleneck  # doctest: +SKIP
        256
    """
    path = _resolve(model)
    state, metadata = _load_state(path)
    text = os.fspath(model)
    digest = weights_digest(state)
    if text in PRETRAINED and digest != PRETRAINED[text].tensors_sha256:
        raise WeightsIntegrityError(
            f"{path}: the cached {text} weights are damaged (their tensors are not the published "
            "ones); delete the file and the next run fetches it again"
        )
    return LoadedModel(
        name=text if text in PRETRAINED else path.stem,
        architecture=metadata["architecture"],
        bottleneck=int(metadata["bottleneck"]),
        network=_network(state, path).to(device),
        weights_sha256=digest,
        metadata=metadata,
    )
