#!/usr/bin/env bash
# Training on a GPU machine, after scripts/gpu_check.sh has built build-gpu: the main job on CUDA
# (bfloat16 autocast), whole-model training steps dense against Pixelfly at the paper's sizes,
# the CrAM step against a plain SGD step (ResNet-20 on Fashion-MNIST, batch 128; ResNet-50 on
# synthetic 224 x 224 images), and GPT-2 small on the Bible corpus, dense against Pixelfly.
# `graph`: the model steps of `bench` each with and without train.cuda_graph, in one process per
# model (GPT-2 with the paper's clipping at 1.0). `peers`: the models of PEER_MODELS (default
# "mixer-b16 gpt2-medium"; also vit-s16, gpt2-small) as `graph` times them (no clipping, each with
# a profiled step) beside the dense PyTorch steps a user would pick instead
# (bench/peer_models.py: timm, Hugging Face, GPT-2 with the same 256-symbol byte vocabulary as
# `bench`'s synthetic text; PEER_MODES=eager,compile by default).
# Data comes from the Debian packages when present, else from data-cache/ (fashion-mnist/ and
# kjv.txt, prepared on a machine that has them). Logs go to $OUT (or ./gpu-logs): one per stage
# and a summary, at most eight files for each part (main, bench, graph, gpt2, peers), which is what the
# GPU machine sends back per call, so run one part per call; run directories and profiler traces
# go to runs/gpu-training/ (ignored by git, not sent back).
#   bash scripts/gpu_training_check.sh [all|main|bench|graph|gpt2|peers]
set -uo pipefail
out="${OUT:-gpu-logs}"
mkdir -p "$out"
cli=build-gpu/pixelfly
fmnist=/usr/share/datasets/fashion-mnist
[ -d "$fmnist" ] || fmnist=data-cache/fashion-mnist
corpus=data-cache/kjv.txt
runs=runs/gpu-training

stage() {  # stage NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  printf '%-22s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - start))" | tee -a "$out/training-summary.txt"
  return $rc
}

# Model inputs of the bench stages: ImageNet-sized synthetic images, 1024-token synthetic text.
synthetic_224=(--set data.name=synthetic-images --set data.image_size=224 --set data.channels=3
               --set data.classes=1000 --set data.synthetic_count=512 --set data.eval_batch_size=64)
text=(--set data.name=synthetic-text --set data.synthetic_count=400000 --set data.context=1024
      --set data.batch_size=8 --set data.eval_batch_size=8)
# The four steps of the `graph` and `peers` parts: dense and Pixelfly, eager and as one CUDA graph.
variants=(--variant dense:model.sparsity=dense --variant pixelfly:model.sparsity=pixelfly
          --variant "dense-graph:model.sparsity=dense;train.cuda_graph=true"
          --variant "pixelfly-graph:model.sparsity=pixelfly;train.cuda_graph=true")

what="${1:-all}"
if [ "$what" = all ] || [ "$what" = main ]; then
  for v in dense pixelfly; do
    stage "main_job_$v" 300 $cli train --config configs/mixer_fmnist.json --set "data.dir=$fmnist" \
      --set "model.sparsity=$v" --set "run.dir=$runs/main_job/$v"
    tail -1 "$out/main_job_$v.log"
  done
fi
if [ "$what" = all ] || [ "$what" = bench ]; then
  stage bench_mixer_b16 200 $cli bench --set model.preset=mixer-b16 "${synthetic_224[@]}" --set data.batch_size=128
  stage bench_vit_s16 200 $cli bench --set model.preset=vit-s16 "${synthetic_224[@]}" --set data.batch_size=128
  stage bench_gpt2_small 200 $cli bench --set model.preset=gpt2-small "${text[@]}"
  stage bench_gpt2_medium 300 $cli bench --set model.preset=gpt2-medium "${text[@]}"
  stage cram_resnet20 200 $cli bench --config configs/resnet20_fmnist_cram.json --set "data.dir=$fmnist" \
    --set data.batch_size=128 --variant sgd:optim.name=sgd --variant cram:optim.name=cram --steps 50
  stage cram_resnet50 300 $cli bench --config configs/resnet50_cram_synthetic.json \
    --variant sgd:optim.name=sgd --variant cram:optim.name=cram --steps 20
  for f in bench_mixer_b16 bench_vit_s16 bench_gpt2_small bench_gpt2_medium cram_resnet20 cram_resnet50; do
    echo "== $f"; sed -n '/^variant /,$p' "$out/$f.log"
  done
fi
if [ "$what" = all ] || [ "$what" = graph ]; then
  clip=(--set train.grad_clip=1)
  stage graph_gpt2_medium 300 $cli bench --set model.preset=gpt2-medium "${text[@]}" "${clip[@]}" "${variants[@]}" \
    --profile "$runs/profile-gpt2-medium"
  stage graph_gpt2_small 200 $cli bench --set model.preset=gpt2-small "${text[@]}" "${clip[@]}" "${variants[@]}"
  stage graph_mixer_b16 300 $cli bench --set model.preset=mixer-b16 "${synthetic_224[@]}" --set data.batch_size=128 \
    "${variants[@]}"
  stage graph_vit_s16 300 $cli bench --set model.preset=vit-s16 "${synthetic_224[@]}" --set data.batch_size=128 \
    "${variants[@]}"
  for f in graph_gpt2_medium graph_gpt2_small graph_mixer_b16 graph_vit_s16; do
    echo "== $f"; sed -n '/^variant /,/^$/p' "$out/$f.log"; grep -A1 "^profile of" "$out/$f.log" | grep "ms,"
  done
fi
if [ "$what" = all ] || [ "$what" = gpt2 ]; then
  for v in dense pixelfly; do
    stage "gpt2_small_kjv_$v" 300 $cli train --config configs/gpt2_small_kjv.json --set "data.corpus_cache=$corpus" \
      --set "model.sparsity=$v" --set "run.dir=$runs/gpt2_small_kjv/$v" --set schedule.epochs=3 \
      --set schedule.warmup_epochs=1 --set data.steps_per_epoch=100 --set data.eval_batches=20
    tail -2 "$out/gpt2_small_kjv_$v.log"
  done
fi
if [ "$what" = peers ]; then
  models=(${PEER_MODELS:-mixer-b16 gpt2-medium})
  for m in "${models[@]}"; do
    case $m in
      mixer-b16 | vit-s16) data=("${synthetic_224[@]}" --set data.batch_size=128) ;;
      gpt2-small | gpt2-medium) data=("${text[@]}") ;;
      *) echo "PEER_MODELS: unknown model '$m' (mixer-b16, vit-s16, gpt2-small, gpt2-medium)"; exit 2 ;;
    esac
    stage "peers_${m//-/_}" 300 $cli bench --set model.preset="$m" "${data[@]}" "${variants[@]}" \
      --profile "$runs/profile-peers-$m"
  done
  list="${models[*]}"
  stage peers_pytorch 500 python3 bench/peer_models.py --models "${list// /,}" --modes "${PEER_MODES:-eager,compile}" \
    --vocab 256 --profile 12
  for m in "${models[@]}"; do
    f="peers_${m//-/_}"
    echo "== $f"; sed -n '/^variant /,/^$/p' "$out/$f.log"; grep -A1 "^profile of" "$out/$f.log" | grep "ms,"
  done
  echo "== peers_pytorch"; grep -E "^(HF|timm)|GPU busy" "$out/peers_pytorch.log"
fi
cat "$out/training-summary.txt"
