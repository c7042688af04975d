"""Modules of engine/ stay under 500 lines (docs/ARCHITECTURE.md): one that grows past it is
split, not let slide (engine/studies/study.py reached 503 lines with the per-mechanism ties of
the revision of 2026-12-04, and nothing noticed)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 500


def test_every_engine_module_is_under_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "engine").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) >= LIMIT}
    assert not long, f"split these modules (at most {LIMIT - 1} lines): {long}"
