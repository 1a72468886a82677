"""The provenance record every prepared or trained model directory carries (torch-free).

It says where a checkpoint came from (source, dtype, the trainer's settings and precision), so
that tables and jobs downstream can report it without loading the model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PROVENANCE_FILE = "backtrack_provenance.json"


def provenance(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The provenance record written beside a prepared model (or one of its descendants)."""
    path = Path(model_dir) / PROVENANCE_FILE
    return json.loads(path.read_text()) if path.exists() else {}
