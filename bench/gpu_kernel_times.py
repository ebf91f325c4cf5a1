"""GPU time per call of each CUDA kernel a Python callable launches, read from torch.profiler:
the helper the profiling benchmarks in bench/ share (imported from the script's directory)."""
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile


def kernel_times(fn, calls, warmup=5):
    """{kernel name: milliseconds per call of fn}, over `calls` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    totals = defaultdict(float)
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            totals[e.name] += e.device_time_total / calls / 1e3
    return dict(totals)
