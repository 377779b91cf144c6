import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from adv2.trained import data


def write_idx(path, array, compress):
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(blob))
    else:
        path.write_bytes(blob)


def make_fake_fmnist(folder, n_train=30, n_test=20, compress=True):
    rng = np.random.RandomState(0)
    for split, n in (("train", n_train), ("test", n_test)):
        img, lab = data.IDX_FILES[split]
        write_idx(folder / img, rng.randint(0, 256, (n, 28, 28)), compress)
        write_idx(folder / lab, rng.randint(0, 10, (n,)), compress)


@pytest.mark.parametrize("compress", [True, False])
def test_reads_generated_idx_files(tmp_path, compress):
    make_fake_fmnist(tmp_path, compress=compress)
    ds = data.load_fashion_mnist(str(tmp_path), allow_download=False)
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_test.shape == (20, 1, 28, 28)
    assert ds.x_train.min() >= 0 and ds.x_train.max() <= 1 and ds.y_test.dtype == torch.int64
    assert ds.num_classes == 10 and ds.source == str(tmp_path)


def test_env_variable_folder(tmp_path, monkeypatch):
    make_fake_fmnist(tmp_path)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    assert data.load_fashion_mnist(allow_download=False).source == str(tmp_path)


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    with pytest.raises(data.DatasetUnavailable) as err:
        data.load_fashion_mnist(allow_download=False)
    assert "nowhere" in str(err.value) and "apt-get install dataset-fashion-mnist" in str(err.value)


@pytest.fixture
def system_copy(tmp_path, monkeypatch):
    """A complete stand-in for the system copy: a chosen folder must never fall back to it."""
    folder = tmp_path / "system"
    folder.mkdir()
    make_fake_fmnist(folder)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", folder)
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    return folder


def test_system_copy_is_used_when_nothing_is_chosen(system_copy):
    assert data.load_fashion_mnist(allow_download=False).source == str(system_copy)


@pytest.mark.parametrize("how", ["env", "data_dir"])
def test_empty_chosen_folder_fails_instead_of_falling_back(tmp_path, system_copy, monkeypatch, how):
    """Issue 11 item 9: an empty FASHION_MNIST_DIR silently used the system copy."""
    empty = tmp_path / "empty"
    empty.mkdir()
    if how == "env":
        monkeypatch.setenv("FASHION_MNIST_DIR", str(empty))
    with pytest.raises(data.DatasetUnavailable) as err:
        data.load_fashion_mnist(str(empty) if how == "data_dir" else None, allow_download=False)
    message = str(err.value)
    assert str(empty) in message and "train-images-idx3-ubyte" in message
    assert ("FASHION_MNIST_DIR" if how == "env" else "data_dir") in message


def test_incomplete_chosen_folder_names_what_is_missing(tmp_path, system_copy, monkeypatch):
    make_fake_fmnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    missing = r"lacks t10k-labels-idx1-ubyte\[\.gz\]\. "
    with pytest.raises(data.DatasetUnavailable, match=missing) as err:
        data.load_fashion_mnist(allow_download=False)
    assert str(tmp_path) in str(err.value)


def test_missing_chosen_folder_is_named(tmp_path, system_copy):
    with pytest.raises(data.DatasetUnavailable, match="does not exist"):
        data.load_fashion_mnist(str(tmp_path / "typo"), allow_download=False)


def test_truncated_file_is_reported(tmp_path):
    make_fake_fmnist(tmp_path, compress=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(data.DatasetUnavailable, match="truncated"):
        data.load_fashion_mnist(str(tmp_path), allow_download=False)


def _cut_gzip(path):
    path.write_bytes(path.read_bytes()[:-100])  # EOFError from gzip before


def _garbage_gzip(path):
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 20)  # BadGzipFile / zlib.error before


def _not_gzip(path):
    path.write_bytes(b"hello, not gzip at all")


@pytest.mark.parametrize("damage", [_cut_gzip, _garbage_gzip, _not_gzip])
def test_damaged_gzip_names_the_file(tmp_path, damage):
    """Issue 11 item 9: a bare EOFError / BadGzipFile without the path."""
    make_fake_fmnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    damage(path)
    with pytest.raises(data.DatasetDamaged, match=re.escape(str(path))):
        data.load_fashion_mnist(str(tmp_path), allow_download=False)


def test_bad_magic_names_the_file(tmp_path):
    make_fake_fmnist(tmp_path, compress=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x0d\x01" + path.read_bytes()[4:])  # float type, not ubyte
    with pytest.raises(data.DatasetDamaged, match=re.escape(str(path)) + ".*bad magic"):
        data.load_fashion_mnist(str(tmp_path), allow_download=False)


@pytest.mark.parametrize(
    "stem, array, words",
    [
        ("train-images-idx3-ubyte", np.zeros((30, 14, 14)), r"\(30, 14, 14\).*\(N, 28, 28\)"),
        ("train-labels-idx1-ubyte", np.zeros((30, 2)), r"\(30, 2\).*\(N,\) labels"),
        ("t10k-labels-idx1-ubyte", np.zeros((19,)), "20 images.*19 labels"),
        ("t10k-labels-idx1-ubyte", np.full((20,), 12), "label 12"),
    ],
)
def test_wrong_shapes_name_the_file(tmp_path, stem, array, words):
    make_fake_fmnist(tmp_path)
    write_idx(tmp_path / stem, array, compress=True)
    with pytest.raises(data.DatasetDamaged, match=words) as err:
        data.load_fashion_mnist(str(tmp_path), allow_download=False)
    assert stem in str(err.value)


# ----------------------------------------------------------------------------- fingerprint
def test_fingerprint_follows_the_content(tmp_path):
    """Issue 11 item 1: a copy with shuffled labels reused the model trained on the real data."""
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder, compress in ((a, True), (b, False), (c, True)):
        folder.mkdir()
        make_fake_fmnist(folder, compress=compress)
    fp = data.load_fashion_mnist(str(a), allow_download=False).fingerprint
    assert len(fp) == 16 and fp == data.load_fashion_mnist(str(a), allow_download=False).fingerprint
    assert data.load_fashion_mnist(str(b), allow_download=False).fingerprint == fp  # gz or not
    labels = data.parse_idx(gzip.decompress((c / "train-labels-idx1-ubyte.gz").read_bytes()), c)
    write_idx(c / "train-labels-idx1-ubyte", np.random.RandomState(1).permutation(labels), True)
    assert data.load_fashion_mnist(str(c), allow_download=False).fingerprint != fp


def test_real_fashion_mnist_fingerprint_is_cheap(fmnist):
    import time

    assert len(fmnist.fingerprint) == 16
    blobs = [
        data._read_idx_bytes(data._find_idx(Path(fmnist.source), stem))
        for pair in data.IDX_FILES.values()
        for stem in pair
    ]
    t0 = time.perf_counter()
    fp = data._Fingerprint()
    for stem, blob in zip((s for pair in data.IDX_FILES.values() for s in pair), blobs):
        fp.add(stem, blob)
    assert time.perf_counter() - t0 < 0.3  # ~0.05 s for the ~55 MB read anyway
    assert fp.hexdigest() == fmnist.fingerprint


def test_imagenet_sample_has_a_fingerprint():
    ds = data.load_imagenet_sample(include_extra=False)
    assert len(ds.fingerprint) == 16


def test_real_fashion_mnist_splits(fmnist):
    assert fmnist.x_train.shape == (60000, 1, 28, 28) and fmnist.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(fmnist.y_test).tolist() == [1000] * 10


def test_imagenet_sample():
    ds = data.load_imagenet_sample()
    assert ds.x_test.shape[1:] == (3, 224, 224) and len(ds.x_test) >= 20
    assert ds.y_test[:20].min() >= 0 and len(ds.class_names) == 1000
    assert (ds.y_test[20:] == -1).any()  # unlabelled extra photos are marked


def test_imagenet_folder_sampling_is_class_balanced(tmp_path):
    from PIL import Image

    # class 0 has 40 images, class 1 only 5: balanced sampling still picks class 1 often
    # (proportional sampling would give 1 of 9 on average, balanced about 4)
    for wnid, count in (("n0001", 40), ("n0002", 5)):
        (tmp_path / wnid).mkdir()
        for i in range(count):
            Image.fromarray(np.full((40, 50, 3), (i * 5) % 256, np.uint8)).save(tmp_path / wnid / f"{i}.JPEG")
    ds = data.load_imagenet_folder(str(tmp_path), n_images=9, seed=0, size=32)
    assert ds.x_test.shape == (9, 3, 32, 32) and ds.class_names == ["n0001", "n0002"]
    assert len(ds.fingerprint) == 16
    assert (ds.y_test == 1).sum() >= 3
    again = data.load_imagenet_folder(str(tmp_path), n_images=9, seed=0, size=32)
    assert torch.equal(ds.y_test, again.y_test)  # seeded


def test_imagenet_folder_missing(tmp_path):
    with pytest.raises(data.DatasetUnavailable, match="wnid"):
        data.load_imagenet_folder(str(tmp_path), 5)


def test_imagenet_class_folders_without_images_name_the_folder(tmp_path):
    for wnid in ("n01440764", "n01443537"):
        (tmp_path / wnid).mkdir()
        (tmp_path / wnid / "README.txt").write_text("not an image")
    with pytest.raises(data.DatasetUnavailable, match=r"no images .* 2 class folders of .*n01440764"):
        data.load_imagenet_folder(str(tmp_path), 5)


class ParityModel(torch.nn.Module):
    """'Classifies' image i correctly when its first pixel is > 0.5."""

    def forward(self, x):
        right = x[:, 0, 0, 0] > 0.5
        logits = torch.zeros(len(x), 4)
        logits[torch.arange(len(x)), torch.where(right, self.labels_of(x), (self.labels_of(x) + 1) % 4)] = 1
        return logits

    def labels_of(self, x):
        return (x[:, 0, 0, 1] * 10).round().long() % 4


def test_attack_set_protocol():
    n = 200
    x = torch.rand(n, 1, 4, 4)
    y = torch.arange(n) % 4
    x[:, 0, 0, 1] = y.float() / 10
    s = data.select_attack_set(ParityModel(), x, y, n_images=30, seed=0, num_classes=4)
    assert len(s.y) == 30
    assert (s.x[:, 0, 0, 0] > 0.5).all()  # only correctly classified images
    assert (s.target != s.y).all() and s.target.max() < 4
    assert torch.equal(s.x, x[s.index]) and len(set(s.index.tolist())) == 30
    assert torch.bincount(s.y, minlength=4).min() >= 3  # balanced-ish across classes
    s2 = data.select_attack_set(ParityModel(), x, y, n_images=30, seed=0, num_classes=4)
    assert torch.equal(s.index, s2.index) and torch.equal(s.target, s2.target)


def test_attack_set_never_silently_smaller():
    """Issue 11 item 5: n_images 100000 was accepted and silently cut to the correct ones."""
    n = 200
    x = torch.rand(n, 1, 4, 4)
    y = torch.arange(n) % 4
    x[:, 0, 0, 1] = y.float() / 10
    correct = int((x[:, 0, 0, 0] > 0.5).sum())
    with pytest.raises(ValueError, match=f"n_images=100000 .* only {correct} of the 200"):
        data.select_attack_set(ParityModel(), x, y, n_images=100_000, seed=0, num_classes=4)
    with pytest.warns(UserWarning, match=f"attacking those {correct} only"):
        s = data.select_attack_set(
            ParityModel(), x, y, n_images=100_000, seed=0, num_classes=4, allow_fewer=True
        )
    assert len(s.y) == correct
    exact = data.select_attack_set(ParityModel(), x, y, n_images=correct, seed=0, num_classes=4)
    assert torch.equal(exact.index, s.index)


class SecondPixelModel(ParityModel):
    """Another 'training seed': right when the third pixel is > 0.5."""

    def forward(self, x):
        return super().forward(x[:, :, :, [2, 1, 0, 3]])


def test_attack_set_of_several_training_seeds_is_one_set():
    """Issue 27: with also_correct, every seed's classifier draws the same images and targets,
    each one right for all of them; without it, the protocol as before."""
    n = 400
    x = torch.rand(n, 1, 4, 4)
    y = torch.arange(n) % 4
    x[:, 0, 0, 1] = y.float() / 10
    a, b = ParityModel(), SecondPixelModel()
    alone = data.select_attack_set(a, x, y, n_images=20, seed=0, num_classes=4)
    assert torch.equal(
        alone.index, data.select_attack_set(a, x, y, 20, seed=0, num_classes=4, also_correct=()).index
    )
    sa = data.select_attack_set(a, x, y, n_images=20, seed=0, num_classes=4, also_correct=[b])
    sb = data.select_attack_set(b, x, y, n_images=20, seed=0, num_classes=4, also_correct=[a])
    assert torch.equal(sa.index, sb.index) and torch.equal(sa.target, sb.target)
    assert (sa.x[:, 0, 0, 0] > 0.5).all() and (sa.x[:, 0, 0, 2] > 0.5).all()
    assert not torch.equal(sa.index, alone.index)
