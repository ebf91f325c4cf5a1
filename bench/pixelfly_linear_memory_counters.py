"""Device-memory and L2 traffic of every kernel of one PixelflyLinear forward + backward, read by
Nsight Compute: the layer's operator (pixelfly::pixelfly_linear, n=16, k=2, b=32, r=32, bias) at
the paper's MLP shapes, bf16, random inputs, each shape warmed up and then one step run between
cudaProfilerStart and cudaProfilerStop. With --summary, reads Nsight Compute's CSV and prints per
kernel its time, the bytes read from and written to device memory, the L2 hit rate and the bytes
through L2 (which say whether a kernel reads its operands from device memory more than once).

    ncu --profile-from-start off --cache-control none --clock-control none \\
        --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sector_hit_rate.pct,lts__t_bytes.sum \\
        --csv --page raw python3 bench/pixelfly_linear_memory_counters.py build/libpixelfly.so > counters.csv
    python3 bench/pixelfly_linear_memory_counters.py --summary counters.csv"""
import csv
import sys

SHAPES = [("Mixer-B fc1", 768, 3072, 25088), ("Mixer-B fc2", 3072, 768, 25088),
          ("GPT-2-M fc1", 1024, 4096, 8192), ("GPT-2-M fc2", 4096, 1024, 8192)]


def run_steps(library):
    import torch

    torch.ops.load_library(library)
    block_layout = torch.classes.pixelfly.BlockLayout
    dtype = torch.bfloat16
    torch.manual_seed(0)
    for name, d_in, d_out, tokens in SHAPES:
        layout = block_layout.flat_butterfly(d_out, d_in, 16, 2, 32)
        leaf = lambda *s: (torch.randn(*s, device="cuda", dtype=dtype) * 0.02).requires_grad_()
        values = leaf(layout.nnz(), 32, 32)
        u, v, bias = leaf(d_out, 32), leaf(d_in, 32), leaf(d_out)
        logit = torch.zeros((), device="cuda", dtype=dtype, requires_grad=True)
        x = torch.randn(tokens, d_in, device="cuda", dtype=dtype, requires_grad=True)
        dy = torch.randn(tokens, d_out, device="cuda", dtype=dtype)

        def step():
            for t in (x, values, u, v, bias, logit):
                t.grad = None
            torch.ops.pixelfly.pixelfly_linear(x, values, layout, u, v, torch.sigmoid(logit), bias).backward(dy)

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
        step()
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()
        print(f"profiled one step: {name}", flush=True)


def summary(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    start = next(i for i, r in enumerate(rows) if r and r[0] == "ID")
    column = {h: i for i, h in enumerate(rows[start])}

    def value(row, metric):
        try:
            return float(row[column[metric]].replace(",", ""))
        except (KeyError, ValueError):
            return float("nan")

    print(f"{'kernel':<60}{'us':>8}{'DRAM rd MB':>12}{'DRAM wr MB':>12}{'L2 hit %':>10}{'L2 MB':>9}")
    for row in rows[start + 1:]:
        if len(row) < len(column) or not row[0].isdigit():
            continue  # the units row, or the program's own output
        print(f"{row[column['Kernel Name']][:58]:<60}{value(row, 'gpu__time_duration.sum') / 1e3:>8.1f}"
              f"{value(row, 'dram__bytes_read.sum') / 1e6:>12.1f}{value(row, 'dram__bytes_write.sum') / 1e6:>12.1f}"
              f"{value(row, 'lts__t_sector_hit_rate.pct'):>10.1f}{value(row, 'lts__t_bytes.sum') / 1e6:>9.1f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--summary":
        summary(sys.argv[2])
    elif len(sys.argv) == 2:
        run_steps(sys.argv[1])
    else:
        sys.exit(__doc__)
