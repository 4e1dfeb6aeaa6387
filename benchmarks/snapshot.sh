#!/usr/bin/env bash
# Behaviour snapshot for refactors: runs the example's whole chain at a small size (600 web, 400
# target and 200 unlabelled target digits, 16 px, one epoch from scratch) through the stage scripts, and writes the sha256 of
# every output (manifest, quarantine, splits, synth table and images, budgets, every point's model
# and predictions, the curve, the report) to WORKDIR.sha. Run it before and after a change and diff
# the two lists: a refactor must leave them equal. Known differences from run to run: fit.json's
# "seconds" fields, and state.pt's zip record names (torch names them after the temporary file).
#   usage: benchmarks/snapshot.sh [REPO] [WORKDIR]     (about 3 minutes on 2 cores)
set -euo pipefail
REPO=$(cd "${1:-$(dirname "$0")/..}" && pwd); W=${2:-/tmp/shiftkit-snapshot}
PY=${PYTHON:-$REPO/.venv/bin/python}
rm -rf "$W"; mkdir -p "$W"; cd "$W"
"$PY" - "$REPO/params.yaml" > params.yaml <<'PY'
import sys, yaml
p = yaml.safe_load(open(sys.argv[1]))
p['example']['web_images'] = 600; p['example']['target_images'] = 400; p['example']['unlabelled_images'] = 200
p['train']['finetune_epochs'] = 1; p['train']['head_epochs'] = 0; p['train']['pretrained'] = False
p['train']['img_size'] = 16
p['report']['replicates'] = 200; p['curve']['replicates'] = 200
yaml.safe_dump(p, sys.stdout, sort_keys=False)
PY
export SHIFTKIT_PROGRESS=0 PYTHONPATH=$REPO
$PY $REPO/pipelines/example.py --out data/raw --params params.yaml
$PY $REPO/pipelines/ingest.py --domain web=data/raw/web --domain target=data/raw/target --unlabelled target=data/raw/unlabelled --out data/manifest --params params.yaml
$PY $REPO/pipelines/check.py --reference data/manifest/manifest.parquet --splits data/splits/splits.parquet --out data/check --params params.yaml || true
$PY $REPO/pipelines/split.py --manifest data/manifest/manifest.parquet --out data/splits --params params.yaml
$PY $REPO/pipelines/synth.py --manifest data/manifest/manifest.parquet --splits data/splits/splits.parquet --out data/synth --params params.yaml
LC="$PY $REPO/pipelines/learning_curve.py --params params.yaml --manifest data/manifest/manifest.parquet"
$LC budgets --splits data/splits/splits.parquet --out data/curve/budgets
$LC pixels --splits data/splits/splits.parquet --out data/curve/pixels
$LC train --arm baseline --budget 0 --out models/web --pixels data/curve/pixels --splits data/curve/budgets/0.parquet
for a in baseline synth; do for b in 0 all; do
  $LC train --arm $a --budget $b --synth data/synth/synth.parquet --start models/web --out models/$a-$b --pixels data/curve/pixels --splits data/curve/budgets/$b.parquet
  $LC evaluate --arm $a --synth data/synth/synth.parquet --model models/$a-$b --out data/curve/predictions/$a-$b/predictions.parquet
done; done
$LC summarize --predictions data/curve/predictions --budgets data/curve/budgets --synth data/synth/synth.parquet --out data/curve/summary
$PY $REPO/pipelines/report.py --predictions data/curve/predictions/synth-all/predictions.parquet --manifest data/manifest/manifest.parquet --synth data/synth/synth.parquet --compare data/curve/predictions/baseline-all/predictions.parquet --curve data/curve/summary/curve.json --out reports --params params.yaml
find data models reports -type f \( -name '*.parquet' -o -name '*.json' -o -name '*.pt' -o -name '*.safetensors' -o -path '*synth/images*' -o -name '*.md' \) | sort | xargs sha256sum > "$W.sha"
wc -l "$W.sha"
