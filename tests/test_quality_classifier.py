"""The quality metric only loads a classifier; the classifier experiment trains one when a diffusion run needs it."""

import pytest

from connlab.errors import UserError


def test_metric_finds_nothing_to_load_and_the_experiment_trains_once(tmp_path):
    from connlab.data import load_dataset
    from connlab.experiments.classifier import find_or_train_classifier
    from connlab.quality import find_classifier

    run = tmp_path / "diffusion-run"
    run.mkdir()
    assert find_classifier(None, run, "cpu") is None  # the metric trains nothing
    data = load_dataset("mnist-embedded", limit=64)
    model, info = find_or_train_classifier(None, run, data, "cpu")
    assert info["source"] == "trained on the fly into this run folder"
    assert (run / "classifier" / "model.safetensors").is_file()
    stamp = (run / "classifier" / "model.safetensors").stat().st_mtime_ns
    again, info2 = find_classifier(None, run, "cpu")  # now the metric loads it, and nothing is retrained
    assert info2 == info and (run / "classifier" / "model.safetensors").stat().st_mtime_ns == stamp
    given, info3 = find_or_train_classifier(run / "classifier", tmp_path / "other-run", data, "cpu")
    assert info3["source"] == "given (--classifier)" and not (tmp_path / "other-run" / "classifier").exists()


def test_a_given_folder_that_is_no_classifier_run_is_a_user_error(tmp_path):
    from connlab.quality import find_classifier

    with pytest.raises(UserError, match="no such run folder"):
        find_classifier(tmp_path / "missing", tmp_path, "cpu")
