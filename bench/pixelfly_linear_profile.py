"""Where the time of one PixelflyLinear forward + backward goes on the GPU: runs the layer's
operator (pixelfly::pixelfly_linear, n=16, k=2, b=32, r=32, bias) and dense torch.nn.functional.linear
at the paper's MLP shapes under torch.profiler and prints, per shape, the GPU time of every kernel
per step, largest first, beside the dense layer's total. bf16, random inputs. Each step starts
without gradients (as after zero_grad(set_to_none=True)), so no step pays for adding into the
last one's.

    python3 bench/pixelfly_linear_profile.py build/libpixelfly.so"""
import sys

import torch

from gpu_kernel_times import kernel_times
from paper_mlp_layer import SHAPES, dense_layer_step, layer_step

torch.ops.load_library(sys.argv[1])
STEPS = 10


def step_kernel_times(step):
    """(kernel, ms per step) pairs, largest first."""
    return sorted(kernel_times(step, STEPS).items(), key=lambda kv: -kv[1])


def main():
    torch.manual_seed(0)
    for name, d_in, d_out, tokens in SHAPES:
        fly, x, dy = layer_step(d_in, d_out, tokens)
        dense = dense_layer_step(x, dy)
        fly_kernels, dense_kernels = step_kernel_times(fly), step_kernel_times(dense)
        print(f"\n{name}: tokens {tokens}, pixelfly {sum(t for _, t in fly_kernels):.3f} ms of kernels per step, "
              f"dense {sum(t for _, t in dense_kernels):.3f} ms")
        for kernel, ms in fly_kernels[:14]:
            print(f"  {ms:8.3f} ms  {kernel[:110]}")


main()
