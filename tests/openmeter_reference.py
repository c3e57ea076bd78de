"""Where OpenMeter's OpenAPI document is, for the tests that judge Allotment by it: the path in
`ALLOTMENT_OPENMETER_OPENAPI`, else `shared/reference/` beside the repository (or beside any
folder above it), else this workplace's shared folder. None when it is nowhere (those tests
then skip)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

_RELATIVE = Path("shared", "reference", "openmeter-openapi.yaml")
_WORKPLACE = Path("/work") / _RELATIVE


@cache
def openmeter_document() -> Path | None:
    named = os.environ.get("ALLOTMENT_OPENMETER_OPENAPI")
    candidates = [Path(named)] if named else []
    candidates += [folder / _RELATIVE for folder in Path(__file__).resolve().parents]
    candidates.append(_WORKPLACE)
    return next((path for path in candidates if path.is_file()), None)
