"""Prints the hottest lines of Nsight Compute source views exported as CSV
(`ncu --import R --page source --csv --print-source sass|cuda`): the instructions or source lines
with the most warp stall samples, their share of all samples, and the stall reasons that make up
most of each.

    python3 scripts/ncu_source_summary.py source-sass.csv [source-cuda.csv ...]"""
import csv
import sys

TOP = 30


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def summarise(path):
    with open(path, newline="") as f:
        lines = f.read().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"#"') or line.startswith('"Address"')
                  or "Warp Stall Sampling" in line), None)
    if start is None:
        print(f"{path}: no source table ({len(lines)} lines; first: {lines[:3]})")
        return
    rows = list(csv.DictReader(lines[start:]))
    columns = list(rows[0].keys()) if rows else []
    total_col = next((c for c in columns if c.startswith("Warp Stall Sampling (All")), None)
    if total_col is None:
        print(f"{path}: no stall-sampling column in {columns}")
        return
    text_col = next((c for c in ("Source", "SASS") if c in columns), columns[1])
    where_col = next((c for c in ("Address", "#", "Line") if c in columns), columns[0])
    reason_cols = [c for c in columns if c.startswith("stall_") and "Not Issued" not in c]
    total = sum(number(r[total_col]) for r in rows) or 1.0
    first = int(rows[0][where_col], 16) if rows and rows[0][where_col].startswith("0x") else 0
    print(f"== {path}: {len(rows)} lines, {total:.0f} stall samples; hottest {TOP} (offset, share, reasons;"
          " 'other' is a reason the export does not name, such as waiting for the tensor cores)")
    for r in sorted(rows, key=lambda r: -number(r[total_col]))[:TOP]:
        samples = number(r[total_col])
        if samples == 0:
            break
        reasons = sorted(((number(r[c]), c.replace("stall_", "")) for c in reason_cols), reverse=True)[:3]
        reasons.append((samples - sum(number(r[c]) for c in reason_cols), "other"))
        why = ", ".join(f"{c} {v / samples:.0%}" for v, c in reasons if v / samples >= 0.05)
        where = r[where_col]
        if where.startswith("0x"):
            where = f"{int(where, 16) - first:x}"
        print(f"{samples / total:6.1%}  {where:>6s}  {r[text_col].strip()[:80]:80s}  {why}")


for p in sys.argv[1:]:
    summarise(p)
