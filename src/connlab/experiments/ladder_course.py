"""``connlab ladder --preset course``: the course's diffusion notebook, its one published number, our verdict.

The course's notebook (``C24_MNIST_AE_diffusion_v3.ipynb``, CIML summer institute 2024): ``steps2use = 10``,
``dist2try = 'norm'``, ``mag2use = 1``; for each of MNIST's first 1,000 training digits one end point
x_T = clip(x_0 + round(N(0, 1)), 0, 1) and T rungs on the straight line to it; the N·(T+1) = 11,000 pairs
x_i → x_{i−1} and x_0 → x_0; the Exercise-1 U-Net with both skips and its 16-filter bottleneck (Keras'
initialisation); BCE, Adam, batch 128, 20 epochs, ``EarlyStopping(monitor='val_loss', patience=5)``
(the last weights kept); validation on MNIST's first 100 test digits, made into 1,100 pairs the same
way. Its last epoch prints ``val_loss: 0.1839`` — one run, which ``connlab.evidence.reproduction``
sets against our seeds (the 95 % prediction interval for one more run).

What differs here, and why it is not the course's: the validation digits are MNIST's test digits only
when the full MNIST is found (``--data-dir``, the cache); otherwise the first 100 embedded digits after
the first 1,000 training ones (``connlab.data.course``). The run folder says which.
"""

from __future__ import annotations

from connlab.diffusion.ladder import materialize_bytes, pair_count
from connlab.errors import UserError
from connlab.evidence import reproduction
from connlab.runtime.memory import available_bytes

COURSE_PRESET = "course"
COURSE = dict(schedule="interpolate", steps=10, dist="norm", mag=1.0, condition="none", epochs=20, batch_size=128,
              lr=1e-3, course_data=True, eval_images=100, all_pairs=True, bottleneck=16, init="keras", patience=5)
PRESETS = {COURSE_PRESET: COURSE}
PUBLISHED_VAL_BCE = 0.1839       # the notebook's last val_loss (T = 10, norm, mag 1, epoch 20 of 20)
PROTOCOL = "T = 10, norm, mag 1, 1,000 digits x 11 pairs, 20 epochs, early stopping 5"
MEMORY_SHARE = 0.5               # the stored ladder may take at most this share of the free memory


def course_differences(cfg) -> list[str]:
    """The settings in which ``cfg`` is not the course's protocol (empty: it is), as flags."""
    differ = [f"--{k.replace('_', '-')} {getattr(cfg, k)}" for k, v in COURSE.items() if getattr(cfg, k) != v]
    if cfg.limit not in (None, 1000):
        differ.append(f"--limit {cfg.limit}")
    if cfg.sweep and cfg.sweep != (COURSE["steps"],):
        differ.append(f"--sweep {','.join(map(str, cfg.sweep))}")
    return differ


def course_summary(cfg, summary: dict) -> dict:
    """summary.json's "course" (the published figure and how this run relates to it) and, when the run is
    the course's protocol, "reproduction": the published figure against our seeds' validation BCE."""
    differ = course_differences(cfg)
    out = {"course": {"published_val_bce": PUBLISHED_VAL_BCE, "protocol": PROTOCOL, "differs": differ,
                      "validation": summary["validation"]["set"]}}
    if not differ:
        out["reproduction"] = reproduction(PUBLISHED_VAL_BCE, summary["val_bce_per_seed"]).as_dict()
    return out


def free_bytes(device) -> int | None:
    """Memory free on ``device`` now, None when unknown (``connlab.runtime.memory.available_bytes``)."""
    return available_bytes(device)


def check_stored_size(n: int, T: int, device, free: int | None = None) -> int:
    """The bytes of the stored (T+1, N, 1, 28, 28) ladder; a one-line UserError when they would take more
    than ``MEMORY_SHARE`` of the free memory (``free``, default: measured on ``device``)."""
    need = materialize_bytes(n, T)
    free = free_bytes(device) if free is None else free
    if free is not None and need > MEMORY_SHARE * free:
        raise UserError(f"--materialize / --all-pairs: the {pair_count(n, T):,} stored images (N = {n:,} digits x "
                        f"{T + 1} rungs) need {need / 1e9:.2f} GB, more than {MEMORY_SHARE:.0%} of the "
                        f"{free / 1e9:.2f} GB free on {device}; use --limit or fewer --steps, or drop both "
                        f"flags (pairs drawn on the fly)")
    return need
