import gzip
import hashlib
import http.server
import json
import threading

import numpy as np
import pytest
import torch

from connlab.cli import main
from connlab.data import corrupt, load_dataset, parse_idx, read_idx, stratified_first, write_idx
from connlab.data import datasets as ds
from connlab.errors import UserError
from tests.conftest import SHARED_MNIST


def make_idx_set(folder, n_train=60, n_test=20, gz=True, seed=0):
    """Four small generated IDX files; returns their content SHA-256s keyed by file name."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    digests = {}
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        write_idx(a, folder / (name + (".gz" if gz else "")))
        raw = bytes([0, 0, 8, a.ndim]) + np.asarray(a.shape, ">i4").tobytes() + a.tobytes()
        digests[name] = hashlib.sha256(raw).hexdigest()
    return arrays, digests


def test_idx_round_trip_raw_and_gzip(tmp_path):
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(a, tmp_path / "x.gz")
    write_idx(a, tmp_path / "x")
    assert np.array_equal(read_idx(tmp_path / "x.gz"), a)
    assert np.array_equal(read_idx(tmp_path / "x"), a)
    assert gzip.decompress((tmp_path / "x.gz").read_bytes()) == (tmp_path / "x").read_bytes()


@pytest.mark.parametrize("data, message", [
    (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "needs 13"),          # truncated payload
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    (b"\x12\x34\x08\x01\x00\x00\x00\x01a", "wrong magic"),
    (b"\x00\x00\x0d\x01\x00\x00\x00\x01a", "0x0d"),                # float data type
    (b"", "wrong magic"),
])
def test_idx_rejects_bad_files(data, message):
    with pytest.raises(UserError, match=message):
        parse_idx(data, "f")


def test_corrupt_gzip_names_file(tmp_path):
    write_idx(np.zeros((3, 28, 28), np.uint8), tmp_path / "a.gz")
    cut = tmp_path / "a.gz"
    cut.write_bytes(cut.read_bytes()[:20])
    with pytest.raises(UserError, match="a.gz: corrupt or truncated gzip"):
        read_idx(cut)


def test_checksum_is_of_contents_so_gzip_and_raw_both_pass(tmp_path, monkeypatch):
    arrays, digests = make_idx_set(tmp_path / "gz", gz=True)
    make_idx_set(tmp_path / "raw", gz=False)
    monkeypatch.setitem(ds.CHECKSUMS, "mnist", digests)
    for sub in ("gz", "raw"):
        data = load_dataset("mnist", tmp_path / sub)
        assert data.train_images.shape == (60, 1, 28, 28) and data.train_images.dtype == torch.uint8
        assert torch.equal(data.train_images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))


def test_checksum_mismatch_is_a_user_error(tmp_path):
    make_idx_set(tmp_path)  # generated files cannot have MNIST's checksums
    with pytest.raises(UserError, match="checksum mismatch"):
        load_dataset("mnist", tmp_path)


def test_embedded_subset_shapes_range_and_balance():
    data = load_dataset("mnist-embedded")
    assert data.source == "embedded"
    assert data.train_images.shape == (9000, 1, 28, 28) and data.test_images.shape == (1000, 1, 28, 28)
    assert data.train_images.dtype == torch.uint8 and int(data.train_images.max()) == 255
    train_counts = torch.bincount(data.train_labels, minlength=10)
    test_counts = torch.bincount(data.test_labels, minlength=10)
    assert (test_counts > 70).all() and (train_counts > 700).all()
    # stratified: each class's share of the test split is within 0.2 % of its share of the train split
    assert torch.allclose(test_counts / 1000, train_counts / 9000, atol=0.002)
    # real digits, not noise: strokes are a minority of bright pixels near the centre
    mean = data.train_images.float().mean(0)[0]
    assert mean[10:18, 10:18].mean() > 4 * mean[:3].mean()


def test_limit_is_stratified_and_first():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    keep = stratified_first(labels, 10)
    assert np.bincount(labels[keep]).tolist() == [5, 3, 2]
    assert keep.tolist() == [0, 1, 2, 3, 4, 50, 51, 52, 80, 81]
    data = load_dataset("mnist-embedded", limit=500)
    assert len(data.train_images) == 500 and len(torch.unique(data.train_labels)) == 10


def test_mnist_falls_back_to_embedded_with_one_line_notice(capsys):
    data = load_dataset("mnist")
    assert data.source == "embedded" and len(data.train_images) == 9000
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "embedded" in err[0]


class _Server:
    """Serves generated IDX files on 127.0.0.1; ``cut`` makes it stop halfway through each file."""

    def __init__(self, folder, cut=False):
        folder, self.cut = folder, cut
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = folder / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if outer.cut else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_verifies_and_caches(tmp_path, monkeypatch):
    arrays, digests = make_idx_set(tmp_path / "served")
    monkeypatch.setitem(ds.CHECKSUMS, "mnist", digests)
    server = _Server(tmp_path / "served")
    try:
        monkeypatch.setenv("CONNLAB_MIRRORS", f"http://127.0.0.1:1/ {server.url}")  # first mirror refuses
        data = load_dataset("mnist")
    finally:
        server.close()
    assert data.source == "full" and len(data.train_images) == 60
    cached = sorted(p.name for p in (ds.cache_dir() / "mnist").iterdir())
    assert cached == sorted(f + ".gz" for f in ds.FILES)  # no temporary files left
    monkeypatch.setenv("CONNLAB_MIRRORS", "")  # now served from the cache, no network
    assert load_dataset("mnist").source == "full"


def test_download_cut_mid_file_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    _, digests = make_idx_set(tmp_path / "served")
    monkeypatch.setitem(ds.CHECKSUMS, "mnist", digests)
    server = _Server(tmp_path / "served", cut=True)
    try:
        monkeypatch.setenv("CONNLAB_MIRRORS", server.url)
        data = load_dataset("mnist")
    finally:
        server.close()
    assert data.source == "embedded"
    assert "embedded" in capsys.readouterr().err
    assert list((ds.cache_dir() / "mnist").iterdir()) == []


def test_corrupt_noise_is_seeded_clipped_and_has_the_magnitude():
    x = torch.full((20000,), 0.5)
    a = corrupt(x, 0.1, "norm", torch.Generator().manual_seed(3))
    b = corrupt(x, 0.1, "norm", torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert abs((a - 0.5).std().item() - 0.1) < 0.005
    u = corrupt(x, 0.2, "uniform", torch.Generator().manual_seed(3))
    assert abs(u.min().item() - 0.3) < 0.01 and abs(u.max().item() - 0.7) < 0.01
    assert corrupt(x, 5.0, "norm").min() >= 0 and corrupt(x, 5.0, "norm").max() <= 1
    with pytest.raises(ValueError, match="laplace"):
        corrupt(x, 0.1, "laplace")
    with pytest.raises(ValueError, match=">= 0"):
        corrupt(x, -1.0)


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_data_prints_embedded_counts(capsys):
    code, out, _ = run_cli(["data", "--dataset", "mnist"], capsys)
    info = json.loads(out)
    assert code == 0 and info["source"] == "embedded"
    assert (info["train"], info["test"]) == (9000, 1000)
    assert all(c > 0 for c in info["train_per_class"] + info["test_per_class"])


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="full MNIST files not on this machine")
def test_cli_data_full_mnist_from_data_dir(capsys):
    code, out, _ = run_cli(["data", "--data-dir", str(SHARED_MNIST)], capsys)
    info = json.loads(out)
    assert code == 0 and (info["train"], info["test"]) == (60000, 10000)


@pytest.mark.parametrize("args, needle", [
    (["data", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["data", "--data-dir", "/nonexistent/folder"], "/nonexistent/folder: no such folder"),
    (["data", "--limit", "0"], "must be >= 1"),
])
def test_cli_data_bad_input_one_line_exit_2(args, needle, capsys):
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_data_missing_and_corrupt_files(tmp_path, capsys, monkeypatch):
    _, digests = make_idx_set(tmp_path)
    monkeypatch.setitem(ds.CHECKSUMS, "mnist", digests)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    code, _, err = run_cli(["data", "--data-dir", str(tmp_path)], capsys)
    assert code == 2 and "missing t10k-labels-idx1-ubyte" in err
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    code, _, err = run_cli(["data", "--data-dir", str(tmp_path)], capsys)
    assert code == 2 and "t10k-labels-idx1-ubyte.gz" in err and len(err.strip().splitlines()) == 1
