"""Run one benchmark row in a loop, for a profiler to watch.

    perf record -e cpu-clock -F 4999 -g -o /tmp/perf.data -- \\
        .venv/bin/python benchmarks/profile_envelope.py encrypt rust-batch-1t --size 10000 --loops 20
    perf report -i /tmp/perf.data --no-children --sort dso,symbol --stdio | head -60

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python benchmarks/profile_envelope.py decrypt rust-batch-1t --size 2000 --loops 1
    callgrind_annotate /tmp/cg.out | head -60

To profile only the timed calls (not input generation, not freeing the outputs),
start perf disabled and let this script switch it on around each call::

    mkfifo /tmp/perf.ctl /tmp/perf.ack
    perf record -D -1 --control fifo:/tmp/perf.ctl,/tmp/perf.ack -e cpu-clock -F 4999 -g \
        -o /tmp/perf.data -- .venv/bin/python benchmarks/profile_envelope.py \
        encrypt rust-batch-all --size 10000 --loops 50 --perf-ctl /tmp/perf.ctl,/tmp/perf.ack
    perf report -i /tmp/perf.data --sort comm,dso,symbol --stdio -g none | head -60

The virtual machine exposes no hardware counters, so ``perf`` needs the software
``cpu-clock`` event. Data and keys are those of ``bench_envelope.py`` (same seed);
the inputs are built before the ``--marker`` line is printed, so profiles of short
runs can be cut there.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time

import bench_envelope as bench

from gspauth import synthetic


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("direction", choices=("encrypt", "decrypt"))
    parser.add_argument("impl", help="row name, e.g. rust-batch-1t, rust-per-record, python-batch, naive")
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--loops", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20170701)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--perf-ctl", metavar="CTL,ACK", help="perf --control fifos: enable perf only around each call")
    args = parser.parse_args()

    native, error = bench._native_module()
    impls = {i.name: i for i in bench.implementations(native, args.threads)}
    if args.impl not in impls:
        parser.error(f"unknown or unavailable row {args.impl!r} (have {', '.join(impls)}; native: {error})")
    impl = impls[args.impl]
    key = random.Random(f"ek:{args.seed}").randbytes(32)
    payloads = synthetic.invoice_payloads(args.size, args.seed)
    if args.direction == "encrypt":
        inputs: list[object] = list(payloads)
        fn = impl.encrypt
        want: object = bench._python.encrypt_request_many(key, payloads, 0)
    else:
        inputs = list(bench.response_items(key, payloads, args.seed))
        fn = impl.decrypt
        want = payloads
    if fn(key, inputs) != want:  # type: ignore[arg-type]
        print("wrong output; not profiling", file=sys.stderr)
        return 1
    print("--marker: inputs ready, profiling loop starts", file=sys.stderr, flush=True)
    ctl = ack = None
    if args.perf_ctl:
        ctl_path, ack_path = args.perf_ctl.split(",")
        ctl, ack = open(ctl_path, "wb", buffering=0), open(ack_path, "rb", buffering=0)

    def perf(command: bytes) -> None:
        if ctl is not None and ack is not None:
            ctl.write(command + b"\n")
            ack.readline()  # perf answers "ack" once the event state has changed

    gc.disable()  # as the benchmark times it
    total = 0.0
    for _ in range(max(1, args.loops)):
        perf(b"enable")
        t0 = time.perf_counter()
        out = fn(key, inputs)  # type: ignore[arg-type]
        total += time.perf_counter() - t0
        perf(b"disable")
        del out
    gc.enable()
    dt = total / max(1, args.loops)
    print(f"{args.direction} {args.impl} n={args.size}: {dt * 1e3:.1f} ms/loop, {args.size / dt:,.0f} records/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
