"""The two GPU timers the operator benchmarks in bench/ share (imported from the script's
directory), both medians of CUDA-event times after warm-up:
  steady_time   calls back to back, each on its own copy of the inputs (together several times
                L2's size, so every call reads its inputs from device memory and writes back the
                dirty lines the call before left), captured as one CUDA graph: no host, no clearing;
                the default;
  flushed_time  each call after L2 is cleared by zeroing 256 MB (triton's do_bench).
After the clearing a call also writes back the 256 MB buffer's dirty lines that L2 holds: a read
of 154 MB took 47.5 us after it and 37.3 us back to back (docs/perf.md, version 25), so passes
that mostly read are charged up to a quarter more than their own traffic by the flushed timer;
and a call whose host time exceeds the clearing's GPU time is charged the GPU's wait for it
(torch BSR at blocks 64 and 128). Launched alone after a synchronisation, cuBLAS's 4096 x 4096
product took 0.37-0.40 ms where the same kernel back to back took 0.34. A 1 GiB copy timed in a
CUDA graph measured 2.7 TB/s against 4.2 launched alone, so the benchmarks take their copy rate
from the flushed timer in either case."""
import math

import torch
import triton.testing as tt


def l2_bytes():
    return getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", 64 << 20)


def input_copies(read_bytes, most=16):
    """How many copies of a call's inputs (read_bytes) keep every call's reads out of L2: together
    at least four times its size, and at least two."""
    return max(2, min(most, math.ceil(4 * l2_bytes() / max(read_bytes, 1))))


def steady_time(calls, replays=30):
    """Median seconds per call of `calls` (callables, each on its own inputs) run one after another
    as one CUDA graph, over `replays` timed replays after one untimed."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # allocations, autotuning and caches before the capture
        for call in calls:
            call()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for call in calls:
            call()
    graph.replay()
    # The replays back to back, each between two events, one synchronisation at the end: the GPU
    # never waits for the host between them (after an idle gap its clocks come back up slowly).
    events = [torch.cuda.Event(enable_timing=True) for _ in range(replays + 1)]
    events[0].record()
    for i in range(replays):
        graph.replay()
        events[i + 1].record()
    events[-1].synchronize()
    times = [events[i].elapsed_time(events[i + 1]) * 1e-3 / len(calls) for i in range(replays)]
    del graph
    return sorted(times)[len(times) // 2]


def steady_from_argv(argv):
    """The benchmarks' timer switch: steady unless `--timer flushed`."""
    at = argv.index("--timer") + 1 if "--timer" in argv else len(argv)
    return not (at < len(argv) and argv[at] == "flushed")


def time_call(call, inputs, steady, quick=False):
    """Seconds per call of call(*inputs): in steady state on copies of the tensors in `inputs`
    (each call on its own; input_copies of them), or flushed."""
    if not steady:
        return flushed_time(lambda: call(*inputs), quick)
    read_bytes = sum(t.numel() * t.element_size() for t in inputs)
    copies = [tuple(inputs)] + [tuple(t.clone() for t in inputs) for _ in range(input_copies(read_bytes) - 1)]
    return steady_time([lambda c=c: call(*c) for c in copies])


def copy_bandwidth(quick=False):
    """Bytes read + written per second by a 1 GiB device-to-device copy, flushed (the roofline's
    copy rate in either timer; see above)."""
    a = torch.randn(1 << 28, device="cuda", dtype=torch.float32)
    b = torch.empty_like(a)
    return 2 * a.numel() * 4 / flushed_time(lambda: b.copy_(a), quick)


def flushed_time(call, quick=False):
    """Median seconds of one call after L2 is cleared by zeroing 256 MB (triton's do_bench)."""
    return tt.do_bench(call, warmup=25 if quick else 100, rep=100 if quick else 400, return_mode="median") * 1e-3
