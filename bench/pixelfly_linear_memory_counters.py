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


def run_steps(library):
    import torch  # here, so that --summary runs without torch
    from paper_mlp_layer import SHAPES, layer_step

    torch.ops.load_library(library)
    torch.manual_seed(0)
    for name, d_in, d_out, tokens in SHAPES:
        step = layer_step(d_in, d_out, tokens)[0]
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
