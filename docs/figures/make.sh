#!/usr/bin/env bash
# Regenerate the example figures of README "Figures": one of each export kind on builtin:shapes,
# in the "paper" style at 300 dpi (each PNG's sidecar holds the command that reproduces it).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/figures
m=builtin:shapes
star=builtin:shape_star
run() { python main.py export "$@" --overwrite; }
run featuremaps --model $m --image $star --layer conv4 --out $out/featuremaps.png
run filters --model $m --layer conv1 --out $out/filters.png
run maximize --model $m --layer conv4 --channel 0..5 --steps 200 --out $out/maximize.png
run dream --model $m --image builtin:shape_circle --layers conv3 --out $out/dream.png
run cam --model $m --image $star --method gradcam --compare circle --out $out/cam.png
run saliency --model $m --image $star --method smoothgrad --out $out/saliency.png
src="builtin:shapes?n=1000&seed=1234"
run topk --model $m --source "$src" --layer conv4 --channel 0..7 --page units --out $out/topk_units.png
run topk --model $m --source "$src" --layer conv4 --page classes --out $out/topk_classes.png
run topk --model $m --source "$src" --layer conv4 --page images --out $out/topk_images.png
run sanity --model $m --image $star --method gradcam --out $out/sanity.png
run compare --model $m --image $star --out $out/compare.png
