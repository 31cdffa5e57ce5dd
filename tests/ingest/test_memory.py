"""Memory is bounded by the buffer budget, not by the input: measured as the bytes the chunker holds."""

from __future__ import annotations

import random
from types import SimpleNamespace

from gspauth import synthetic


def test_buffered_bytes_stay_under_the_budget_on_a_large_input(ingest: SimpleNamespace) -> None:
    # 30 suppliers x 60 invoices (~3.6 MB of JSONL), interleaved so that every group stays open;
    # a budget of 256 KiB (about 120 invoices) is far below the input.
    n_suppliers, per, budget = 30, 60, 256 << 10
    lines = list(synthetic.b2b_jsonl(n_suppliers * per, seed=1))
    supplier = synthetic.supplier_gstin_for(1).encode()
    rng = random.Random(2)
    # Other Maharashtra suppliers, so every invoice's tax kind stays what it was.
    others = [synthetic.random_gstin(rng, "27").encode() for _ in range(n_suppliers)]
    data = b"".join(line.replace(supplier, others[i % n_suppliers], 1) for i, line in enumerate(lines))
    parser = ingest.Parser("jsonl", "big.jsonl", None, None, None)
    chunker = ingest.Chunker(1 << 20, budget)
    count = chunks = peak_seen = 0
    for start in range(0, len(data), 1 << 20):
        for chunk in chunker.add(parser.feed(data[start : start + (1 << 20)]), None):
            count += chunk.count
            chunks += 1
        peak_seen = max(peak_seen, chunker.buffered_bytes)
    for chunk in chunker.add(parser.finish(), None) + chunker.flush():
        count += chunk.count
        chunks += 1
    assert len(data) > 10 * budget
    assert count == n_suppliers * per  # nothing lost
    assert 0 < chunker.peak_buffered_bytes <= budget
    assert peak_seen <= budget
    assert chunks > n_suppliers  # groups were emitted early to keep within the budget
