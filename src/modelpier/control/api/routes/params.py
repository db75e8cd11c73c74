"""Path parameters shared by the routes, bounded as the bodies are (spec/bounds.py).

FastAPI takes path constraints from ``Path``, not from pydantic's ``Field``; so the bounded path
types live here, built on the same constants. An id beyond the stored range answers 422 naming
the parameter instead of reaching the database.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from modelpier.spec.bounds import MAX_INT32

IdPath = Annotated[int, Path(ge=1, le=MAX_INT32, description="A positive 32-bit integer.")]
