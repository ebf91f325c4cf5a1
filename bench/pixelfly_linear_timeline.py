"""Where the wall time of one PixelflyLinear forward + backward goes when it runs as a CUDA graph,
as the layer benchmark times it: the layer's operator (pixelfly::pixelfly_linear, n=16, k=2, b=32,
r=32, bias) and dense torch.nn.functional.linear at the paper's MLP shapes, bf16, random inputs.
Captures STEPS steps into one graph, replays it under torch.profiler and reads every kernel's
start, end and stream from the trace. Per layer it prints the step's wall time (from one step's
first kernel start to the next step's), the time some kernel runs (the union of the kernels'
intervals), the time no kernel runs (launch gaps), and the sum of the kernels' times (over the
wall time where two streams overlap); then, for one step, each kernel's start, duration, stream
and the idle time before it.

    python3 bench/pixelfly_linear_timeline.py build/libpixelfly.so"""
import json
import os
import statistics
import sys
import tempfile

import torch
from torch.profiler import ProfilerActivity, profile

from paper_mlp_layer import SHAPES, dense_layer_step, layer_step

torch.ops.load_library(sys.argv[1])
STEPS = 8


def graph_of(step):
    """A CUDA graph of STEPS steps, captured after warm-up on the capturing stream."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(STEPS):
            step()
    graph.replay()
    torch.cuda.synchronize()
    return graph


def kernel_intervals(graph):
    """[(start us, end us, stream, name)] of one replay's kernels and memsets, by start."""
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        graph.replay()
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    kernels = [(float(e["ts"]), float(e["ts"]) + float(e["dur"]), e.get("args", {}).get("stream", -1), e["name"])
               for e in events if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memset")]
    return sorted(kernels)


def steps_of(kernels):
    """The replay's kernels cut into its STEPS steps (each launches the same kernels; the streams
    join at the end of each step, so no kernel of one starts before the last one's have)."""
    n = len(kernels) // STEPS
    return [kernels[i * n:(i + 1) * n] for i in range(STEPS)] if n * STEPS == len(kernels) else []


def busy_time(kernels):
    """Microseconds in which at least one of the kernels runs."""
    busy, end = 0.0, float("-inf")
    for start, stop, _, _ in kernels:
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return busy


def report(label, kernels, show):
    steps = steps_of(kernels)[1:]  # the first step follows the replay's launch
    if not steps:
        print(f"  {label}: {len(kernels)} kernels in the trace, not {STEPS} steps of the same count")
        return
    walls, busies, sums = [], [], []
    for i, s in enumerate(steps):
        nxt = steps[i + 1][0][0] if i + 1 < len(steps) else max(k[1] for k in s)
        walls.append(nxt - s[0][0])
        busies.append(busy_time(s))
        sums.append(sum(k[1] - k[0] for k in s))
    wall, busy = statistics.median(walls), statistics.median(busies)
    print(f"  {label}: step {wall:7.1f} us, a kernel running {busy:7.1f} us, none {wall - busy:6.1f} us "
          f"({len(steps[0])} kernels), kernel time {statistics.median(sums):7.1f} us")
    if show:
        s = steps[len(steps) // 2]
        end = s[0][0]
        for start, stop, stream, name in s:
            print(f"    {start - s[0][0]:7.1f} +{stop - start:6.1f} us  idle {max(0.0, start - end):5.1f}  "
                  f"stream {stream:>3}  {name[:70]}")
            end = max(end, stop)


def main():
    torch.manual_seed(0)
    for name, d_in, d_out, tokens in SHAPES:
        fly, x, dy = layer_step(d_in, d_out, tokens)
        dense = dense_layer_step(x, dy)
        print(f"\n{name}: tokens {tokens}")
        fly_kernels = kernel_intervals(graph_of(fly))
        dense_kernels = kernel_intervals(graph_of(dense))
        report("pixelfly", fly_kernels, True)
        report("dense", dense_kernels, False)


main()
