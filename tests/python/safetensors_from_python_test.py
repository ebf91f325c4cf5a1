"""safetensors files between pixelfly and the safetensors PyPI package, both ways: a file written
by pixelfly (tests/io/safetensors_example.cpp) is read with safetensors.torch.load_file, and a
file written by the package's own (Rust) serializer is read back by pixelfly. Exits 77 (skipped)
where the safetensors package is not installed."""
import json
import os
import subprocess
import sys
import tempfile

import torch

try:
    import safetensors
    from safetensors import safe_open
    from safetensors.torch import load_file
except ImportError as e:
    print(f"skipped: {e} (pip install safetensors)")
    sys.exit(77)

example = sys.argv[1]

# What safetensors_example writes, in its order.
expected = {
    "blocks.0.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4,
    "f64_scalar": torch.tensor(-1.25, dtype=torch.float64),
    "f16": torch.tensor([0.5, -3.0, 65504.0], dtype=torch.float16),
    "bf16": torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
    "i64": torch.tensor([-9, 1 << 40], dtype=torch.int64),
    "i32": torch.tensor([-7, 8], dtype=torch.int32),
    "i16": torch.tensor([-300, 300], dtype=torch.int16),
    "i8": torch.tensor([-128, 127], dtype=torch.int8),
    "u8": torch.tensor([0, 255], dtype=torch.uint8),
    "mask": torch.tensor([True, False, True]),
    "empty": torch.empty(0, 4),
}
safetensors_names = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}

with tempfile.TemporaryDirectory() as tmp:
    # pixelfly -> safetensors
    path = os.path.join(tmp, "from_pixelfly.safetensors")
    subprocess.run([example, "write", path], check=True)
    loaded = load_file(path)
    assert set(loaded) == set(expected), sorted(loaded)
    for name, want in expected.items():
        got = loaded[name]
        assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape)
        assert torch.equal(got, want), (name, got, want)
    with safe_open(path, framework="pt") as f:
        assert f.metadata() == {"origin": "pixelfly", "step": "42"}, f.metadata()

    # safetensors -> pixelfly, through the package's serializer (needs no NumPy, unlike save_file)
    written = {
        "layer.weight": torch.randn(3, 5, generator=torch.Generator().manual_seed(0)),
        "layer.bias": torch.tensor([1.0, -2.0, 0.25], dtype=torch.float64),
        "half": torch.tensor([[0.5, 2.0]], dtype=torch.float16),
        "bf": torch.tensor([3.0], dtype=torch.bfloat16),
        "steps": torch.tensor(7, dtype=torch.int64),
        "flags": torch.tensor([False, True]),
        "nothing": torch.empty(2, 0, dtype=torch.int32),
        "bytes": torch.tensor([1, 2, 250], dtype=torch.uint8),
    }
    specs = {
        name: safetensors.TensorSpec(dtype=str(t.dtype).removeprefix("torch."), shape=list(t.shape),
                                     data_ptr=t.data_ptr(), data_len=t.numel() * t.element_size())
        for name, t in written.items()
    }
    path = os.path.join(tmp, "from_python.safetensors")
    safetensors.serialize_file(specs, path, {"origin": "python"})
    out = subprocess.run([example, "dump", path], check=True, capture_output=True, text=True).stdout
    dumped = json.loads(out)
    assert dumped["metadata"] == {"origin": "python"}, dumped["metadata"]
    assert sorted(t["name"] for t in dumped["tensors"]) == sorted(written), dumped["tensors"]
    for t in dumped["tensors"]:
        want = written[t["name"]]
        assert t["dtype"] == safetensors_names[want.dtype], (t["name"], t["dtype"])
        assert t["shape"] == list(want.shape), (t["name"], t["shape"])
        assert t["values"] == want.to(torch.float64).reshape(-1).tolist(), (t["name"], t["values"])

    # A corrupt file: pixelfly names the file and the problem.
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 1)
    result = subprocess.run([example, "dump", path], capture_output=True, text=True)
    assert result.returncode == 1 and f"safetensors file '{path}'" in result.stderr, result.stderr

print("python safetensors test passed")
