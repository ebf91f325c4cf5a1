"""Prints the hottest instructions of an Nsight Compute SASS source view exported as CSV
(`ncu --import R --page source --csv --print-source sass`): those with the most warp stall
samples, as an offset from the kernel's first instruction, their share of all samples, and the
stall reasons that make up most of each.

    python3 scripts/ncu_source_summary.py source-sass.csv"""
import csv
import sys

TOP = 30
SAMPLES = "Warp Stall Sampling (All Samples)"


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def summarise(path):
    with open(path, newline="") as f:
        lines = f.read().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"Address"')), None)
    if start is None:
        print(f"{path}: no SASS table ({len(lines)} lines; first: {lines[:3]})")
        return
    rows = list(csv.DictReader(lines[start:]))
    if not rows or SAMPLES not in rows[0]:
        print(f"{path}: no '{SAMPLES}' column")
        return
    reason_cols = [c for c in rows[0] if c.startswith("stall_") and "Not Issued" not in c]
    total = sum(number(r[SAMPLES]) for r in rows) or 1.0
    first = int(rows[0]["Address"], 16)
    print(f"== {path}: {len(rows)} instructions, {total:.0f} stall samples; hottest {TOP} (offset, share, reasons;"
          " 'other' is a reason the export does not name, such as waiting for the tensor cores)")
    for r in sorted(rows, key=lambda r: -number(r[SAMPLES]))[:TOP]:
        samples = number(r[SAMPLES])
        if samples == 0:
            break
        reasons = sorted(((number(r[c]), c.replace("stall_", "")) for c in reason_cols), reverse=True)[:3]
        reasons.append((samples - sum(number(r[c]) for c in reason_cols), "other"))
        why = ", ".join(f"{c} {v / samples:.0%}" for v, c in reasons if v / samples >= 0.05)
        offset = int(r["Address"], 16) - first
        print(f"{samples / total:6.1%}  {offset:>6x}  {r['Source'].strip()[:80]:80s}  {why}")


summarise(sys.argv[1])
