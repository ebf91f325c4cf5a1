import sys, time, torch
from torch.profiler import profile, ProfilerActivity
torch.ops.load_library(sys.argv[1])
out_dir = sys.argv[2]
BlockLayout = torch.classes.pixelfly.BlockLayout
ops = torch.ops.pixelfly
DT = torch.bfloat16

def host_time(fn, n=200, sleep=False):
    """median host seconds of fn with an empty queue (or behind a long sleep kernel)."""
    ts = []
    for i in range(n):
        torch.cuda.synchronize()
        if sleep: torch.cuda._sleep(20_000_000)  # ~10 ms of GPU
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    torch.cuda.synchronize()
    ts.sort(); return ts[len(ts) // 2] * 1e6

def setup(d_in, d_out, tokens):
    layout = BlockLayout.flat_butterfly(d_out, d_in, 16, 2, 32)
    leaf = lambda *s: (torch.randn(*s, device="cuda", dtype=DT) * 0.02).requires_grad_()
    P = dict(values=leaf(layout.nnz(), 32, 32), u=leaf(d_out, 32), v=leaf(d_in, 32), bias=leaf(d_out),
             logit=torch.zeros((), device="cuda", dtype=DT, requires_grad=True),
             x=torch.randn(tokens, d_in, device="cuda", dtype=DT, requires_grad=True),
             dy=torch.randn(tokens, d_out, device="cuda", dtype=DT), w=leaf(d_out, d_in), b=leaf(d_out))
    return layout, P

for name, d_in, d_out, tokens in [("tiny", 256, 256, 256), ("GPT-2-M fc1", 1024, 4096, 8192), ("GPT-2-M fc2", 4096, 1024, 8192)]:
    layout, P = setup(d_in, d_out, tokens)
    x, values, u, v, bias, logit, dy, w, b = (P[k] for k in "x values u v bias logit dy w b".split())
    def clear():
        for t in (x, values, u, v, bias, logit, w, b): t.grad = None
    def fly():
        clear(); ops.pixelfly_linear(x, values, layout, u, v, torch.sigmoid(logit), bias).backward(dy)
    def dense():
        clear(); torch.nn.functional.linear(x, w, b).backward(dy)
    holder = {}
    def fly_fwd():
        clear(); holder['y'] = ops.pixelfly_linear(x, values, layout, u, v, torch.sigmoid(logit), bias)
    def fly_bwd(): holder['y'].backward(dy)
    def dense_fwd():
        clear(); holder['y'] = torch.nn.functional.linear(x, w, b)
    for f in (fly, dense): 
        for _ in range(20): f()
    rows = []
    rows.append(("dense step", host_time(dense), host_time(dense, sleep=True)))
    rows.append(("pixelfly step", host_time(fly), host_time(fly, sleep=True)))
    def phase(fwd, bwd):
        a, c = [], []
        for i in range(200):
            torch.cuda.synchronize(); t = time.perf_counter(); fwd(); a.append(time.perf_counter() - t)
            torch.cuda.synchronize(); t = time.perf_counter(); bwd(); c.append(time.perf_counter() - t)
        a.sort(); c.sort(); return a[100] * 1e6, c[100] * 1e6
    rows.append(("dense fwd / bwd", *phase(dense_fwd, fly_bwd)))
    rows.append(("pixelfly fwd / bwd", *phase(fly_fwd, fly_bwd)))
    # single ops
    xd = x.detach(); g = torch.sigmoid(logit.detach()); vt = v.detach().t().contiguous()
    proj = torch.cat([xd @ v.detach(), torch.ones(tokens, 8, device="cuda", dtype=DT)], 1)
    dyu = (dy @ u.detach())
    single = [
        ("sigmoid", lambda: torch.sigmoid(logit)),
        ("F.linear fwd (no grad)", lambda: torch.nn.functional.linear(xd, w.detach(), b.detach())),
        ("mm x v", lambda: xd @ v.detach()),
        ("v.t().contiguous()", lambda: v.detach().t().contiguous()),
        ("mixed_linear", lambda: ops.mixed_linear(xd, values.detach(), layout, g, proj.narrow(1, 0, 32), u.detach(), bias.detach())),
        ("low_rank_grad_products", lambda: ops.low_rank_grad_products(dy, u.detach(), proj)),
        ("mixed_linear_grad_input", lambda: ops.mixed_linear_grad_input(dy, values.detach(), layout, g, dyu, vt)),
        ("block_sparse_linear", lambda: ops.block_sparse_linear(xd, values.detach(), layout)),
        ("empty", lambda: torch.empty(tokens, 32, device="cuda", dtype=DT)),
        ("zeros", lambda: torch.zeros(tokens, 32, device="cuda", dtype=DT)),
    ]
    try:
        single.append(("grad_params", lambda: ops.pixelfly_linear_grad_params(dy, xd, values.detach(), layout, u.detach(), g, ops.low_rank_grad_products(dy, u.detach(), proj)[1], dyu, True)))
    except Exception as e: print("grad_params", e)
    for n, f in single:
        try:
            for _ in range(5): f()
            rows.append((n, host_time(f), host_time(f, sleep=True)))
        except Exception as e:
            print(n, "failed", e)
    print(f"\n{name}: host us (median, queue empty / behind a sleeping kernel)")
    for r in rows: print(f"  {r[0]:28s} {r[1]:9.1f} {r[2]:9.1f}")
    # profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(10): fly()
        torch.cuda.synchronize()
    if name != "GPT-2-M fc1":
        prof.export_chrome_trace(f"{out_dir}/trace-{name.replace(' ', '_')}.json")
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=40, max_name_column_width=50))
