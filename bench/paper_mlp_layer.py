"""The PixelflyLinear layer the profiling benchmarks in bench/ run: the layer's operator
(pixelfly::pixelfly_linear) at the paper's MLP shapes and released settings (n=16, k=2, b=32, r=32,
bias), bf16, random inputs, and the dense layer beside it (imported from the script's directory)."""
import torch

SHAPES = [("Mixer-B fc1", 768, 3072, 25088), ("Mixer-B fc2", 3072, 768, 25088),
          ("GPT-2-M fc1", 1024, 4096, 8192), ("GPT-2-M fc2", 4096, 1024, 8192)]
DTYPE = torch.bfloat16


def layer_step(d_in, d_out, tokens):
    """(step, x, dy): step() runs one forward + backward of the layer on x (tokens x d_in) with
    the output's gradient dy, each from no gradients (as after zero_grad(set_to_none=True)), so
    that no step pays for adding into the last one's."""
    layout = torch.classes.pixelfly.BlockLayout.flat_butterfly(d_out, d_in, 16, 2, 32)
    leaf = lambda *s: (torch.randn(*s, device="cuda", dtype=DTYPE) * 0.02).requires_grad_()
    values = leaf(layout.nnz(), 32, 32)
    u, v, bias = leaf(d_out, 32), leaf(d_in, 32), leaf(d_out)
    logit = torch.zeros((), device="cuda", dtype=DTYPE, requires_grad=True)
    x = torch.randn(tokens, d_in, device="cuda", dtype=DTYPE, requires_grad=True)
    dy = torch.randn(tokens, d_out, device="cuda", dtype=DTYPE)

    def step():
        for t in (x, values, u, v, bias, logit):
            t.grad = None
        torch.ops.pixelfly.pixelfly_linear(x, values, layout, u, v, logit, bias, gamma_is_logit=True).backward(dy)

    return step, x, dy


def dense_layer_step(x, dy):
    """step() runs one forward + backward of dense torch.nn.functional.linear with a bias on x
    (tokens x d_in) with the output's gradient dy (tokens x d_out), from no gradients."""
    d_in, d_out = x.shape[-1], dy.shape[-1]
    w = (torch.randn(d_out, d_in, device="cuda", dtype=DTYPE) * 0.02).requires_grad_()
    b = (torch.randn(d_out, device="cuda", dtype=DTYPE) * 0.02).requires_grad_()

    def step():
        for t in (x, w, b):
            t.grad = None
        torch.nn.functional.linear(x, w, b).backward(dy)

    return step
