import gzip
import struct

import numpy as np
import pytest
import torch

from adv2 import data


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
    assert data.fashion_mnist_candidates()[0] == tmp_path


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    with pytest.raises(data.DatasetUnavailable) as err:
        data.load_fashion_mnist(str(tmp_path / "empty"), allow_download=False)
    assert "nowhere" in str(err.value) and "apt-get install dataset-fashion-mnist" in str(err.value)


def test_truncated_file_is_reported(tmp_path):
    make_fake_fmnist(tmp_path, compress=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(data.DatasetUnavailable, match="truncated"):
        data.load_fashion_mnist(str(tmp_path), allow_download=False)


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
    assert (ds.y_test == 1).sum() >= 3
    again = data.load_imagenet_folder(str(tmp_path), n_images=9, seed=0, size=32)
    assert torch.equal(ds.y_test, again.y_test)  # seeded


def test_imagenet_folder_missing(tmp_path):
    with pytest.raises(data.DatasetUnavailable, match="wnid"):
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
    assert (s.x[:, 0, 0, 0] > 0.5).all()             # only correctly classified images
    assert (s.target != s.y).all() and s.target.max() < 4
    assert torch.equal(s.x, x[s.index]) and len(set(s.index.tolist())) == 30
    assert torch.bincount(s.y, minlength=4).min() >= 3   # balanced-ish across classes
    s2 = data.select_attack_set(ParityModel(), x, y, n_images=30, seed=0, num_classes=4)
    assert torch.equal(s.index, s2.index) and torch.equal(s.target, s2.target)
