"""How fast is an exact global top-k over a ResNet-50's 25.5 M weights on this GPU, by each
selection PyTorch offers? (Chooses the method behind compress::keep_largest on CUDA.)
  python3 bench/topk_selection_probe.py"""
import time
import torch

n, k = 25_557_032, 12_778_516
scores = torch.randn(n, device="cuda").abs()


def timed(name, fn, repeats=20):
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    torch.cuda.synchronize()
    print(f"{name:<34} {1e3 * (time.perf_counter() - start) / repeats:8.2f} ms")
    return out


def bisection32():
    keys = scores.view(torch.int32).long()
    low, high = -(1 << 31), (1 << 31) - 1
    while low < high:
        mid = low + (high - low + 1) // 2
        if int((keys >= mid).sum()) >= k:
            low = mid
        else:
            high = mid - 1
    return low


kth = timed("kthvalue", lambda: torch.kthvalue(scores, n - k + 1).values)
top = timed("topk(sorted=False).min", lambda: torch.topk(scores, k, sorted=False).values.min())
timed("bisection, 32 passes of ge+sum", bisection32, repeats=5)
timed("sort", lambda: torch.sort(scores).values[n - k])
print("topk agrees with kthvalue:", bool(kth == top))
