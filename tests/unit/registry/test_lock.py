"""The environment lock: parsing requirement files of exact pins, the digest, the stored record."""

from __future__ import annotations

import pytest

from modelpier.errors import InvalidInput
from modelpier.registry.lock import EnvironmentLock, LockedPackage, LockSource, lock_of, parse_requirements, with_lock

HASH_A = "sha256:" + "a" * 64
HASH_B = "sha256:" + "b" * 64


def test_parses_pins_hashes_continuations_markers_and_index_options() -> None:
    text = f"""# uv pip compile --generate-hashes
--index-url https://pypi.org/simple
Scikit_Learn==1.5.2 \\
    --hash={HASH_A} \\
    --hash={HASH_B}
numpy==1.26.4 ; python_version >= "3.9"   # via scikit-learn
uvicorn[standard]===0.30.0
"""
    lock = parse_requirements(text, python="3.11.2")
    assert lock.pins == ("numpy==1.26.4", "scikit-learn==1.5.2", "uvicorn==0.30.0")
    assert lock.packages[1].hashes == (HASH_A, HASH_B)
    assert lock.version_of("scikit_learn") == "1.5.2"
    assert (lock.python_minor, lock.source, lock.hashed) == ("3.11", LockSource.USER, False)
    assert f"scikit-learn==1.5.2 --hash={HASH_A} --hash={HASH_B}" in lock.requirements_txt()


@pytest.mark.parametrize(("line", "fragment"), [
    ("scikit-learn>=1.5", "not an exact pin"),
    ("scikit-learn", "not an exact pin"),
    ("-e ./src", "not supported"),
    ("https://example.com/x.whl", "not an exact pin"),
    ("numpy==1.26.4\nnumpy==2.0.0", "pinned twice"),
    ("numpy==1.26.4 --hash=md5:abc", "sha256"),
])
def test_refuses_what_cannot_be_reproduced_naming_the_line(line: str, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        parse_requirements(line, python="3.11")


def test_digest_ignores_order_source_and_patch_release_of_python() -> None:
    a = EnvironmentLock.of("3.11.2", [LockedPackage("numpy", "1.26.4"), LockedPackage("scipy", "1.13.0")])
    b = EnvironmentLock.of("3.11.9", [LockedPackage("scipy", "1.13.0"), LockedPackage("NumPy", "1.26.4")],
                           LockSource.SAVED)
    assert a.digest == b.digest
    assert a.digest != EnvironmentLock.of("3.12.1", a.packages).digest
    assert a.digest != EnvironmentLock.of("3.11", [LockedPackage("numpy", "1.26.4")]).digest


def test_round_trips_through_the_environment_record() -> None:
    lock = EnvironmentLock.of("3.11.2", [LockedPackage("numpy", "1.26.4", (HASH_A,))], LockSource.MLFLOW)
    environment = with_lock({"python": "3.11.2"}, lock)
    assert environment["lock"]["digest"] == lock.digest
    assert lock_of(environment) == lock
    assert lock_of({"python": "3.11.2"}) is None
    with pytest.raises(InvalidInput, match="malformed"):
        lock_of({"lock": {"packages": []}})
