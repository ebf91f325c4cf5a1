"""How fast does cuBLAS run the tall, thin products of a PixelflyLinear backward (dy u and
dy^T [x v | 1]) at the paper's MLP shapes, in each formulation (direct, transposed, transposed
then made contiguous) and at rank 64, against the time to read dy once at 4.2 TB/s?
  python3 bench/low_rank_products_probe.py"""
import torch
from triton.testing import do_bench
torch.manual_seed(0)
dt = torch.bfloat16
rows = []
for name, T, out, inn, r in [("Mixer-B fc1", 25088, 3072, 768, 32), ("Mixer-B fc2", 25088, 768, 3072, 32),
                             ("GPT-2-M fc1", 8192, 4096, 1024, 48), ("GPT-2-M fc2", 8192, 1024, 4096, 48)]:
    dy = torch.randn(T, out, device="cuda", dtype=dt)
    for rr in (r, 64):
        u = torch.randn(out, rr, device="cuda", dtype=dt)
        ut = u.t().contiguous()
        a = do_bench(lambda: torch.mm(dy, u), warmup=50, rep=300)
        b = do_bench(lambda: torch.mm(ut, dy.t()), warmup=50, rep=300)
        c = do_bench(lambda: torch.mm(ut, dy.t()).t().contiguous(), warmup=50, rep=300)
        d = do_bench(lambda: torch.mm(dy, ut.t()), warmup=50, rep=300)
        ideal = dy.numel() * 2 / 4.2e12 * 1e3
        rows.append(f"{name:12s} r={rr:3d}  dy.u {a*1e3:6.1f} us  (u^T dy^T) {b*1e3:6.1f} us  +contig {c*1e3:6.1f} us  dy.(u^T)^T {d*1e3:6.1f} us  bytes floor {ideal*1e3:5.1f} us")
    p = torch.randn(T, r + 8, device="cuda", dtype=dt)
    e = do_bench(lambda: torch.mm(dy.t(), p), warmup=50, rep=300)
    f = do_bench(lambda: torch.mm(p.t(), dy), warmup=50, rep=300)
    rows.append(f"{name:12s} dy^T p {e*1e3:6.1f} us   p^T dy {f*1e3:6.1f} us")
print("\n".join(rows))
