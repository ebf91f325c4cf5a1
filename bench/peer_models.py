"""The dense PyTorch training steps a user would pick instead of pixelfly's models, timed on this GPU.

timm's Mixer-B/16 and ViT-S/16 (batch 128, 224 x 224 images, 1000 classes) and Hugging Face's
GPT-2 small / medium (batch 8 x 1024 tokens), each eager and under torch.compile: bfloat16
autocast, fused AdamW (lr 1e-3, weight decay 0.05, as `pixelfly bench`'s defaults), random inputs,
the step being forward, loss, backward, update and zeroing the gradients. ViT-S is the model of
pixelfly's vit-s16 preset and the Pixelfly paper (dim 768, depth 8, 8 heads, MLP 2304, no qkv
bias: 48.8 M parameters), built from timm's VisionTransformer; timm's own vit_small_patch16_224 is
another, smaller model. GPT-2's vocabulary is --vocab: 50257 by default, 256 for the byte-level
one `pixelfly bench` trains on synthetic text with. Median of the timed steps (CUDA events around
each) after warm-up. With --profile N, one more step runs under torch.profiler
(gpu_kernel_times.py) and its N kernels with the most GPU time are listed, as `pixelfly bench
--profile` lists its own. Compare with `pixelfly bench` on the same presets in the same session
(scripts/gpu_training_check.sh peers).

    python3 bench/peer_models.py [--models mixer-b16,gpt2-medium] [--modes eager,compile] [--vocab 256]
                                 [--profile 12]
"""
import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from gpu_kernel_times import kernel_times


def image_model(build):
    model = build()
    batch = (torch.randn(128, 3, 224, 224, device="cuda"), torch.randint(0, 1000, (128,), device="cuda"))
    return model, batch, lambda m, b: F.cross_entropy(m(b[0]), b[1]), 128


def mixer_b16():
    import timm

    return timm.create_model("mixer_b16_224", num_classes=1000)


def vit_s16():
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=224, patch_size=16, embed_dim=768, depth=8, num_heads=8, mlp_ratio=3.0,
                             qkv_bias=False, num_classes=1000)


def gpt2_model(dim, depth, heads, vocab):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_positions=1024, n_embd=dim, n_layer=depth, n_head=heads, vocab_size=vocab)
    config.use_cache = False
    model = GPT2LMHeadModel(config)
    tokens = torch.randint(0, vocab, (8, 1024), device="cuda")
    return model, tokens, lambda m, b: m(input_ids=b, labels=b).loss, 8 * 1024


MODELS = {
    "mixer-b16": ("timm mixer_b16_224", lambda vocab: image_model(mixer_b16)),
    "vit-s16": ("timm ViT-S/16 (768 x 8)", lambda vocab: image_model(vit_s16)),
    "gpt2-small": ("HF GPT-2 small", lambda vocab: gpt2_model(768, 12, 12, vocab)),
    "gpt2-medium": ("HF GPT-2 medium", lambda vocab: gpt2_model(1024, 24, 16, vocab)),
}


def profile_step(step, top):
    times = kernel_times(step, calls=1, warmup=0)
    lines = [f"  profiled step: GPU busy {sum(times.values()):.2f} ms"]
    for name, ms in sorted(times.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"  {ms:9.3f} ms  {name[:100]}")
    return "\n".join(lines)


def time_steps(key, mode, warmup, steps, top, vocab):
    model, batch, loss_of, samples = MODELS[key][1](vocab)
    model = model.cuda().train()
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, fused=True)
    forward = torch.compile(model) if mode == "compile" else model

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_of(forward, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = time.perf_counter()
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - start
    times = []
    for _ in range(steps):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        step()
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end))
    profile = profile_step(step, top) if top > 0 else ""
    del model, optimizer, forward
    torch.cuda.empty_cache()
    return parameters, samples, statistics.median(times), warmup_s, profile


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mixer-b16,vit-s16,gpt2-small,gpt2-medium")
    parser.add_argument("--modes", default="eager,compile")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--vocab", type=int, default=50257, help="GPT-2's vocabulary")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="list a profiled step's N largest kernels")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    modes = [m for m in args.modes.split(",") if m]
    for m in models:
        if m not in MODELS:
            sys.exit(f"peer_models.py: unknown model '{m}'; known: {', '.join(MODELS)}")
    for m in modes:
        if m not in ("eager", "compile"):
            sys.exit(f"peer_models.py: unknown mode '{m}'; known: eager, compile")
    if args.vocab < 2:
        sys.exit(f"peer_models.py: --vocab must be at least 2, got {args.vocab}")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  bf16 autocast, fused AdamW, "
          f"median of {args.steps} steps after {args.warmup}, GPT-2 vocabulary {args.vocab}", flush=True)
    print(f"{'model':28s} {'mode':8s} {'parameters':>11s} {'samples':>8s} {'step ms':>9s} {'warm-up s':>10s}", flush=True)
    for key in models:
        for mode in modes:
            parameters, samples, ms, warmup_s, profile = time_steps(key, mode, args.warmup, args.steps, args.profile, args.vocab)
            print(f"{MODELS[key][0]:28s} {mode:8s} {parameters:11d} {samples:8d} {ms:9.2f} {warmup_s:10.1f}", flush=True)
            if profile:
                print(profile, flush=True)


if __name__ == "__main__":
    main()
