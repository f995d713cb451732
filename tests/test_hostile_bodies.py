"""1 MB pathological bodies of every shape in bench/hostile.py finish, with
the right result, through the parse worker and its time cap.

A shape that made a pattern quadratic (a run of newlines before "From:" took
43 s at 40 KB) would overrun the cap and come back as "parse took longer
than 10 s"; here each must come back as the parser's own verdict. The cost
per KB of each shape is printed by bench/hostile.py, not asserted here.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mailsync.config import SecuritySettings
from mailsync.event import Kind
from mailsync.security.email_gate import evaluate_email
from mailsync.security.limits import parse_many_with_timeout


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "bench" / "hostile.py"
    spec = importlib.util.spec_from_file_location("bench_hostile", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_hostile"] = module
    spec.loader.exec_module(module)
    return module


HOSTILE = _bench()
SIZE = 1 << 20
SHAPES = HOSTILE.all_shapes()


def test_every_shape_finishes_with_the_parsers_verdict() -> None:
    raws = [HOSTILE.message(shape(SIZE), html) for _, shape, html in SHAPES]
    assert all(len(raw) > SIZE - 4096 for raw in raws)
    settings = SecuritySettings(require_dkim=False, parse_timeout_seconds=10)
    fn = functools.partial(evaluate_email, settings=settings)
    results = parse_many_with_timeout(fn, raws, 10)
    verdicts = {}
    for (name, _, _), event in zip(SHAPES, results, strict=True):
        assert not isinstance(event, Exception), name
        verdicts[name] = (event.kind, event.reason)
    # Not one has the fields of the offer its subject names.
    expected = (
        Kind.UNRECOGNIZED,
        "offer_accepted: the email has no valid agreement id",
    )
    wrong = {name: v for name, v in verdicts.items() if v != expected}
    assert wrong == {}


@pytest.mark.parametrize("size", [64 << 10])
def test_a_quadratic_shape_of_old_is_fast_in_process(size: int) -> None:
    # Without the worker: the parse of 64 KB of newlines before "From:"
    # (10.8 s for 20 KB before) is a plain call.
    raw = HOSTILE.message(HOSTILE.SHAPES["newlines before From:"](size))
    settings = SecuritySettings(require_dkim=False, parse_timeout_seconds=0)
    event = evaluate_email(raw, settings)
    assert event.kind is Kind.UNRECOGNIZED
