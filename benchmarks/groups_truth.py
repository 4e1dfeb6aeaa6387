"""False data-mismatch claims with and without the user's groups, over many seeds.

Web and target are the same real photographs cut into objects (grid cells) and views (crops),
rendered alike: the target only shows other objects (``tests/groups_helpers.py``). The truth is no
data mismatch. For each seed the objects are dealt to web and target afresh, split (with the
objects as groups, or without), a logistic regression trained on train, and the report built;
a seed is a false claim when the report claims data mismatch. With groups the rate must stay at or
below the claim level (Holm's family-wise 5%); without, the bridge holds other views of train
objects and the report claims mismatch far more often.

Run: ``PYTHONPATH=. python benchmarks/groups_truth.py [SEEDS]`` (default 20; about 2 s a run on
one core).
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

from tests.groups_helpers import groups_truth_run


def main(seeds: int = 20) -> None:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for with_groups in (True, False):
            claims, bridge, dev = 0, 0.0, 0.0
            for seed in range(seeds):
                data = groups_truth_run(Path(tmp), seed, with_groups)
                d = data.decomposition
                claims += int(d.gaps["data_mismatch"].claimed)
                bridge += d.errors["bridge"] / seeds
                dev += d.errors["dev"] / seeds
            rate = claims / seeds
            print(f"groups={'yes' if with_groups else 'no '}: data mismatch claimed in {claims}/{seeds} seeds "
                  f"({rate:.0%}); mean bridge error {bridge:.1%}, dev error {dev:.1%}")
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
