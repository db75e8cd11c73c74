"""Bounds of the integers the platform API accepts, shared by every route and body.

Ids, version and revision numbers are stored as 32-bit integers (``Integer`` columns: PostgreSQL's
``integer``), sizes and quotas as 64-bit ones (``BigInteger``, or JSON numbers read into them). A
larger number from a client used to reach the database and fail there (SQLite: ``OverflowError``,
a 500; PostgreSQL: "integer out of range"); bounding it where it is parsed makes it a 422 naming
the field before any query runs. Token lifetimes are bounded too: a date
past year 9999 cannot be represented at all.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
# A token lifetime of at most 100 years: longer is "never expires", which is said by leaving it out.
MAX_LIFETIME_S = 100 * 365 * 24 * 3600

Id = Annotated[int, Field(ge=1, le=MAX_INT32)]
"""A row id, version or revision number: 1 up to the largest 32-bit integer."""

Count = Annotated[int, Field(ge=0, le=MAX_INT64)]
"""A size in bytes, a quota or a count: 0 up to the largest 64-bit integer."""

LifetimeS = Annotated[float, Field(gt=0, le=MAX_LIFETIME_S)]
"""A lifetime in seconds, above 0 and at most 100 years."""
