"""Hypothesis: the Rust backend gives the same records, errors and chunk bytes as the reference.

Inputs of every format, valid and broken (see :mod:`.strategies`), fed whole and in
random pieces; chunk limits small enough that records cross chunk boundaries.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from . import strategies
from .support import run, splits

pytestmark = pytest.mark.native


def _same(nat: SimpleNamespace, ref: SimpleNamespace, fmt: str, data: bytes, hints: tuple, seed: int,
          max_chunk: int) -> None:
    pieces = splits(data, random.Random(seed), seed % 7)
    want = run(ref, fmt, pieces, *hints, max_chunk=max_chunk, max_buffer=4096)
    got = run(nat, fmt, pieces, *hints, max_chunk=max_chunk, max_buffer=4096)
    assert got == want
    # Any split gives the same records, errors and chunks (batch sizes may differ).
    whole = run(nat, fmt, data, *hints, max_chunk=max_chunk, max_buffer=4096)
    assert (whole.records, whole.errors, whole.chunks, whole.failed) == (got.records, got.errors, got.chunks,
                                                                          got.failed)


@given(file=strategies.jsonl_files(), seed=st.integers(0, 2**16), max_chunk=st.sampled_from([600, 5000, 1 << 20]))
def test_jsonl(nat: SimpleNamespace, ref: SimpleNamespace, file: tuple, seed: int, max_chunk: int) -> None:
    _same(nat, ref, "jsonl", file[0], file[1], seed, max_chunk)


@given(file=strategies.gstr1_files(), seed=st.integers(0, 2**16), max_chunk=st.sampled_from([600, 5000, 1 << 20]))
def test_gstr1_json(nat: SimpleNamespace, ref: SimpleNamespace, file: tuple, seed: int, max_chunk: int) -> None:
    _same(nat, ref, "gstr1-json", file[0], file[1], seed, max_chunk)


@given(file=strategies.csv_files(), seed=st.integers(0, 2**16), max_chunk=st.sampled_from([600, 5000, 1 << 20]))
def test_csv(nat: SimpleNamespace, ref: SimpleNamespace, file: tuple, seed: int, max_chunk: int) -> None:
    _same(nat, ref, "csv", file[0], file[1], seed, max_chunk)
