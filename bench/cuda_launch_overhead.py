"""Host time per call of pixelfly's CUDA operators, measured where the GPU work is negligible
(256 tokens, 256 x 256, block 32): the time a training step's many small launches cost on the
CPU, beside torch.matmul at the same size. Also times the driver's TMA descriptor encoder
(cuTensorMapEncodeTiled), which the tensor-core operators call for each operand on each call,
and, for one PixelflyLinear step at Mixer-B fc1's shape, the host's enqueue time against the
whole step and the CPU time of each operator in it (torch.profiler).

    python3 bench/cuda_launch_overhead.py build/libpixelfly.so"""
import ctypes
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

torch.ops.load_library(sys.argv[1])
BlockLayout = torch.classes.pixelfly.BlockLayout
ops = torch.ops.pixelfly
DT = torch.bfloat16


def timed(fn, calls, warmup):
    """Seconds per call of fn after warm-up: (host enqueue time, time until the GPU is done)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    enqueued = time.perf_counter() - start
    torch.cuda.synchronize()
    return enqueued / calls, (time.perf_counter() - start) / calls


def host_us(fn, calls=3000):
    return timed(fn, calls, warmup=100)[1] * 1e6


def encode_us(calls=20000):
    """cuTensorMapEncodeTiled on a 2-D bf16 matrix, called straight from libcuda."""
    cuda = ctypes.CDLL("libcuda.so.1")
    buf = torch.empty(4096, 4096, device="cuda", dtype=DT)
    storage = ctypes.create_string_buffer(128 + 64)
    address = (ctypes.addressof(storage) + 63) // 64 * 64
    dims = (ctypes.c_uint64 * 2)(4096, 4096)
    strides = (ctypes.c_uint64 * 1)(4096 * 2)
    box = (ctypes.c_uint32 * 2)(32, 128)
    element_strides = (ctypes.c_uint32 * 2)(1, 1)
    bf16, no_interleave, swizzle_64b, l2_128b, no_fill = 9, 0, 2, 2, 0

    def encode():
        return cuda.cuTensorMapEncodeTiled(ctypes.c_void_p(address), bf16, 2, ctypes.c_void_p(buf.data_ptr()), dims,
                                           strides, box, element_strides, no_interleave, swizzle_64b, l2_128b, no_fill)

    assert encode() == 0, "cuTensorMapEncodeTiled failed"
    start = time.perf_counter()
    for _ in range(calls):
        encode()
    return (time.perf_counter() - start) / calls * 1e6


def main():
    torch.manual_seed(0)
    layout = BlockLayout.flat_butterfly(256, 256, 4, 1, 32)
    x = torch.randn(256, 256, device="cuda", dtype=DT)
    dy = torch.randn(256, 256, device="cuda", dtype=DT)
    w = torch.randn(256, 256, device="cuda", dtype=DT)
    values = torch.randn(layout.nnz(), 32, 32, device="cuda", dtype=DT)
    u, v = torch.randn(256, 32, device="cuda", dtype=DT), torch.randn(256, 32, device="cuda", dtype=DT)
    bias = torch.randn(256, device="cuda", dtype=DT)
    gamma = torch.tensor(0.5, device="cuda")
    xa = x.detach().requires_grad_()
    va = values.detach().requires_grad_()

    def layer_step():
        ops.pixelfly_linear(xa, va, layout, u, v, gamma, bias).backward(dy)

    rows = [("cuTensorMapEncodeTiled (one operand)", encode_us()),
            ("torch.matmul 256x256x256", host_us(lambda: x @ w.t())),
            ("pixelfly block_sparse_linear", host_us(lambda: ops.block_sparse_linear(x, values, layout))),
            ("pixelfly block_sparse_linear_grad_input",
             host_us(lambda: ops.block_sparse_linear_grad_input(dy, values, layout))),
            ("pixelfly block_sparse_linear_grad_weight",
             host_us(lambda: ops.block_sparse_linear_grad_weight(dy, x, layout))),
            ("pixelfly_linear forward + backward", host_us(layer_step, calls=1000))]
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  host microseconds per call")
    for name, us in rows:
        print(f"{name:45s} {us:9.2f} us")
    mixer_layer_step()


def mixer_layer_step(steps=20):
    """Enqueue time and CPU profile of one fused layer step at Mixer-B fc1 (768 -> 3072, 25 088 tokens)."""
    layout = BlockLayout.flat_butterfly(3072, 768, 16, 2, 32)
    leaf = lambda *s: (torch.randn(*s, device="cuda", dtype=DT) * 0.02).requires_grad_()
    values, u, v, bias = leaf(layout.nnz(), 32, 32), leaf(3072, 32), leaf(768, 32), leaf(3072)
    logit = torch.zeros((), device="cuda", dtype=DT, requires_grad=True)
    x = torch.randn(25088, 768, device="cuda", dtype=DT, requires_grad=True)
    dy = torch.randn(25088, 3072, device="cuda", dtype=DT)

    def step():
        ops.pixelfly_linear(x, values, layout, u, v, logit, bias, gamma_is_logit=True).backward(dy)

    enqueued, total = timed(step, steps, warmup=5)
    print(f"\nMixer-B fc1 layer step: host enqueue {enqueued * 1e3:.3f} ms, whole step {total * 1e3:.3f} ms")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60))


main()
