"""Learning checks shared by the trained-model tests and their untrained-model controls.

Each check states what "it learned" means with a margin over a trivial baseline. Every test
that uses one on a trained model also runs it on an untrained (freshly initialised) model of
the same kind and asserts that it fails there, so the check is known to be able to fail.
"""

PSNR_MARGIN_DB = 1.0   # a denoiser must beat the better of the noisy input and the mean image by this


def denoiser_learned(psnr: float, baselines: dict, margin_db: float = PSNR_MARGIN_DB) -> bool:
    """PSNR (dB) above both trivial baselines (``{"noisy_input": {"psnr"}, "mean_image": {"psnr"}}``) by the margin."""
    return psnr > max(baselines["noisy_input"]["psnr"], baselines["mean_image"]["psnr"]) + margin_db


def classifier_learned(accuracy: float, chance: float, margin: float) -> bool:
    """Accuracy above chance by ``margin`` (absolute)."""
    return accuracy > chance + margin


def regressor_learned(mse: float, baseline_mse: float, factor: float = 0.5) -> bool:
    """Test MSE below ``factor`` times the predict-the-mean baseline."""
    return mse < factor * baseline_mse


def step_improves(psnr_before: float, psnr_after: float, margin_db: float = 2.0) -> bool:
    """One denoising step raises PSNR (dB) by at least ``margin_db``."""
    return psnr_after > psnr_before + margin_db


def mixture_learned(mixture_mse: float, one_expert_mse: float, factor: float = 0.7) -> bool:
    """A fitted softmax-gated mixture's test MSE below ``factor`` times one fitted expert's."""
    return mixture_mse < factor * one_expert_mse
