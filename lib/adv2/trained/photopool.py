"""Training images for the photo classifier's RTS, available offline: the *photo pool*.

RTS needs natural images, not labels (its objective asks the classifier about masked copies of
an image and uses the classifier's own prediction as the class), so any colour photograph will do
-- except the photos the book attacks (:func:`adv2.trained.data.load_imagenet_sample`), which must stay
held out. The pool gathers

* colour photos shipped inside installed Python packages (scikit-image, scikit-learn,
  matplotlib sample data), and
* the real photographs of Debian wallpaper packages the project installs (``make data``):
  :data:`DEBIAN_PACKAGES` names each package and the files of it that are photographs (the
  abstract-art wallpapers of the same packages are left out); the pool kind ``"packages-v2"``
  adds :data:`DEBIAN_PACKAGES_V2_EXTRA` (``"packages"`` keeps its files: the committed photo
  RTS was trained on them),

drops every file whose content equals an attacked photo (same bytes, or the same picture after
the 224-pixel resize), and makes ``n_images`` training images from them: random resized crops
(10-100 % of the area, aspect 3/4-4/3), horizontal flips, and with probability ``mosaic_prob``
a 2x2 mosaic of crops of four different sources. Images are stored as uint8 (a quarter of the
memory of floats). :func:`load_imagenette_pool` does the same from torchvision's Imagenette
folder (real ImageNet images, when a reader has downloaded it).

Distinct photographs per source (Debian 12's packages, the installed Python packages), after
the attacked-photo check (it drops 7 of the 12 Python-package photos); no two kept sources are
the same picture (the closest pair differs by mean |x - x'| 0.08 at 224 px; the check's
threshold is 0.02):

=============================  ==========  =============
source                         "packages"  "packages-v2"
=============================  ==========  =============
skimage, sklearn, matplotlib   5           5
mate-backgrounds               12          12
lomiri-wallpapers-16.04        13          13
lomiri-wallpapers-20.04        2           2
plasma-workspace-wallpapers    10          10
lxqt-themes                    --          11
tuxpaint-data                  --          19
total                          42          72
=============================  ==========  =============
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from adv2.trained.data import (
    EXTRA_PHOTOS,
    Dataset,
    DatasetUnavailable,
    _extra_photo_path,
    _Fingerprint,
    imagenet_class_names,
    load_imagenet_sample,
    resize_center_crop,
)

# colour photos inside Python packages (attacked ones are listed too: the content check drops them)
PACKAGE_PHOTOS = [
    ("skimage", "astronaut.png"),
    ("skimage", "chelsea.png"),
    ("skimage", "coffee.png"),
    ("skimage", "rocket.jpg"),
    ("skimage", "motorcycle_left.png"),
    ("skimage", "motorcycle_right.png"),
    ("skimage", "hubble_deep_field.jpg"),
    ("skimage", "retina.jpg"),
    ("skimage", "ihc.png"),
    ("sklearn", "china.jpg"),
    ("sklearn", "flower.jpg"),
    ("matplotlib", "grace_hopper.jpg"),
]

# Debian packages with real photographs: package -> glob patterns of its photographs (looked at
# one by one; the packages' other wallpapers are abstract art, gradients or textures)
_LOMIRI16 = [
    "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
    "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
    "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
    "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
    "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi",
]  # fmt: skip
_PLASMA = [
    "BytheWater", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
    "OneStandsOut", "Path", "Volna", "summer_1am",
]  # fmt: skip
DEBIAN_PACKAGES = {
    "mate-backgrounds": ["/usr/share/backgrounds/mate/nature/*.jpg"],
    "lomiri-wallpapers-16.04": [f"/usr/share/backgrounds/{n}.jpg" for n in _LOMIRI16],
    "lomiri-wallpapers-20.04": [
        "/usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg",
        "/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
    ],
    # one file per wallpaper (each ships many resolutions; see _one_resolution)
    "plasma-workspace-wallpapers": [f"/usr/share/wallpapers/{n}/contents/images/*.jpg" for n in _PLASMA],
}
# The "packages-v2" pool (issue 23) adds these to DEBIAN_PACKAGES; "packages" keeps its files, so
# the committed photo RTS's training data stays as it was.
_LXQT = [
    "Butterfly-Kenneth-Wimer.jpg", "after-the-rain.jpg", "fog.jpg", "this-is-not-windows.jpg",
    "Valendas.png", "appleflower.png", "beam.png", "butterfly.png", "cloud.png", "drop.png",
    "flowers.png",
]  # fmt: skip
DEBIAN_PACKAGES_V2_EXTRA = {
    # the landscapes and close-ups (its origami, triangles and logo wallpapers are drawn)
    "lxqt-themes": [f"/usr/share/lxqt/wallpapers/{n}" for n in _LXQT],
    # the drawing templates are all photographs (bark, cliffs, sea, trees, sheep, machines)
    "tuxpaint-data": ["/usr/share/tuxpaint/templates/*.jpg"],
}
PACKAGE_POOL_KINDS = ("packages", "packages-v2")


def debian_packages(kind: str = "packages") -> dict[str, list[str]]:
    """The Debian packages (and globs of their photographs) of the pool ``kind``."""
    if kind == "packages":
        return DEBIAN_PACKAGES
    if kind == "packages-v2":
        return {**DEBIAN_PACKAGES, **DEBIAN_PACKAGES_V2_EXTRA}
    raise ValueError(f"kind={kind!r} is not one of {list(PACKAGE_POOL_KINDS)}")


def _one_resolution(paths: list[Path]) -> list[Path]:
    """Plasma ships a wallpaper in many resolutions ("1920x1080.jpg"): keep the narrowest at
    least 1024 pixels wide (else the widest), so each photograph counts once."""
    if len(paths) <= 1 or "contents/images" not in str(paths[0]):
        return paths

    def width(p: Path) -> int:
        try:
            return int(p.stem.split("x")[0])
        except ValueError:
            return 0

    wide = [p for p in paths if width(p) >= 1024]
    return [min(wide, key=width)] if wide else [max(paths, key=width)]


MAX_SIDE = 640  # sources are shrunk to this longer side once: crops of 224 px need no more


def _fingerprint_of(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def package_photo_files(kind: str = "packages") -> list[tuple[str, Path]]:
    """``(source, path)`` of every candidate of the pool ``kind`` present on this machine."""
    found: list[tuple[str, Path]] = []
    for package, filename in PACKAGE_PHOTOS:
        path = _extra_photo_path(package, filename)
        if path is not None:
            found.append((package, path))
    for package, patterns in debian_packages(kind).items():
        for pattern in patterns:
            base = Path(pattern)
            matches = [p for p in sorted(base.parent.glob(base.name)) if p.is_file()]
            found += [(package, p) for p in _one_resolution(matches)]
    return found


def _open_rgb(blob: bytes):
    from PIL import Image

    img = Image.open(io.BytesIO(blob)).convert("RGB")
    scale = MAX_SIDE / max(img.size)
    if scale < 1:
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR
        )
    return img


def _attacked_reference(size: int) -> tuple[set[str], torch.Tensor]:
    """sha256 of every attacked photo file and the photos themselves (as the attack sees them)."""
    sample = load_imagenet_sample(size=size)
    hashes = set()
    import foolbox

    for f in sorted((Path(foolbox.__file__).parent / "data").glob("imagenet_*_*.jpg")):
        hashes.add(_fingerprint_of(f.read_bytes()))

    for package, filename, _label, _name in EXTRA_PHOTOS:
        path = _extra_photo_path(package, filename)
        if path is not None:
            hashes.add(_fingerprint_of(path.read_bytes()))
    return hashes, sample.x_test


def is_attacked(blob: bytes, hashes: set[str], attacked: torch.Tensor, size: int, tol: float = 0.02) -> bool:
    """Same bytes as an attacked photo, or the same picture once resized and cropped to ``size``
    (mean absolute difference below ``tol``: re-encoded or resized copies are caught too)."""
    if _fingerprint_of(blob) in hashes:
        return True
    from PIL import Image

    x = resize_center_crop(Image.open(io.BytesIO(blob)), size)
    return bool(((attacked - x).abs().mean(dim=(1, 2, 3)) < tol).any())


def _random_crop(img, size: int, rng: np.random.RandomState, scale=(0.1, 1.0), ratio=(3 / 4, 4 / 3)):
    """A random resized crop of a PIL image (area fraction ``scale``, aspect ``ratio``) to size."""
    from PIL import Image

    w, h = img.size
    for _ in range(10):
        area = w * h * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw, ch = round(np.sqrt(area * aspect)), round(np.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = rng.randint(0, w - cw + 1), rng.randint(0, h - ch + 1)
            break
    else:  # fall back to the central square
        cw = ch = min(w, h)
        left, top = (w - cw) // 2, (h - ch) // 2
    crop = img.crop((left, top, left + cw, top + ch)).resize((size, size), Image.BILINEAR)
    if rng.rand() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(crop, dtype=np.uint8)


def make_training_images(
    images: Sequence, n_images: int, size: int = 224, seed: int = 0, mosaic_prob: float = 0.25
) -> tuple[torch.Tensor, list[int]]:
    """``n_images`` uint8 images (N, 3, size, size) from the PIL ``images``: random resized
    crops and flips, and with probability ``mosaic_prob`` a 2x2 mosaic of four different
    sources (each a crop at half size). Returns the images and the source index of each (-1 for
    a mosaic)."""
    if not images:
        raise ValueError("no source images to make training images from")
    rng = np.random.RandomState(seed)
    out = np.empty((n_images, size, size, 3), dtype=np.uint8)
    origin: list[int] = []
    half = size // 2
    for i in range(n_images):
        if len(images) >= 4 and rng.rand() < mosaic_prob:
            picks = rng.choice(len(images), 4, replace=False)
            tiles = [_random_crop(images[j], half, rng, scale=(0.2, 1.0)) for j in picks]
            canvas = np.zeros((size, size, 3), dtype=np.uint8)
            for t, (r, c) in zip(tiles, [(0, 0), (0, 1), (1, 0), (1, 1)]):
                canvas[r * half : (r + 1) * half, c * half : (c + 1) * half] = t
            out[i] = canvas
            origin.append(-1)
        else:
            j = rng.randint(len(images))
            out[i] = _random_crop(images[j], size, rng)
            origin.append(int(j))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), origin


def _pool_dataset(
    name: str,
    sources: list[tuple[str, str, bytes]],
    n_images: int,
    size: int,
    seed: int,
    mosaic_prob: float,
    excluded: list[str],
    source_path: str,
) -> Dataset:
    fingerprint = _Fingerprint()
    images = []
    for _src, fname, blob in sources:
        fingerprint.add(fname, blob)
        images.append(_open_rgb(blob))
    x, origin = make_training_images(images, n_images, size, seed, mosaic_prob)
    fingerprint.add("recipe", f"{n_images},{size},{seed},{mosaic_prob}".encode())
    per_source = Counter(src for src, _f, _b in sources)
    return Dataset(
        name,
        imagenet_class_names(),
        x,
        torch.full((len(x),), -1, dtype=torch.int64),  # filled by the classifier's own predictions
        x[:0],
        torch.zeros(0, dtype=torch.int64),
        source=source_path,
        extra={
            "files": [f for _s, f, _b in sources],
            "photos_per_source": dict(sorted(per_source.items())),
            "excluded": excluded,
            "mosaics": sum(o < 0 for o in origin),
            "origin": origin,
        },
        fingerprint=fingerprint.hexdigest(),
    )


def load_photo_pool(
    size: int = 224,
    n_images: int = 1024,
    seed: int = 0,
    mosaic_prob: float = 0.25,
    min_photos: int = 8,
    kind: str = "packages",
) -> Dataset:
    """The offline photo pool: ``n_images`` training images (uint8, in ``x_train``; ``y_train``
    is -1 until a classifier labels them) from the package photos of the pool ``kind``
    (:data:`PACKAGE_POOL_KINDS`), without the attacked photos.

    ``extra`` records ``photos_per_source`` (counts per package), ``files``, ``excluded`` (the
    candidates equal to an attacked photo) and ``mosaics``. Fewer than ``min_photos`` usable
    photographs raises :class:`adv2.trained.data.DatasetUnavailable` naming the Debian packages to install.
    """
    hashes, attacked = _attacked_reference(size)
    sources: list[tuple[str, str, bytes]] = []
    excluded: list[str] = []
    packages = debian_packages(kind)
    for src, path in package_photo_files(kind):
        blob = path.read_bytes()
        if is_attacked(blob, hashes, attacked, size):
            excluded.append(f"{src}:{path.name}")
        else:
            sources.append((src, f"{src}:{path.name}", blob))
    if len(sources) < min_photos:
        raise DatasetUnavailable(
            f"the photo pool found only {len(sources)} usable photographs (min_photos={min_photos}); "
            f"install the Debian packages {', '.join(packages)} "
            f"(`make data` as root, or apt-get install {' '.join(packages)}). The pool is "
            "needed only to train the photo RTS again; its committed checkpoint loads without it."
        )
    return _pool_dataset("photo-pool", sources, n_images, size, seed, mosaic_prob, excluded, kind)


IMAGENETTE_FOLDERS = ("imagenette2", "imagenette2-320", "imagenette2-160")


def imagenette_train_folder(root: str | os.PathLike) -> Path | None:
    """The folder of Imagenette's ``<wnid>/*.JPEG`` training images under ``root`` (torchvision's
    layout ``root/imagenette2*/train``, or ``root`` itself when it holds the class folders)."""
    base = Path(root)
    for name in IMAGENETTE_FOLDERS:
        if (base / name / "train").is_dir():
            return base / name / "train"
    if (base / "train").is_dir():
        return base / "train"
    if base.is_dir() and any(d.is_dir() and d.name.startswith("n") for d in base.iterdir()):
        return base
    return None


def load_imagenette_pool(
    root: str | os.PathLike,
    size: int = 224,
    n_images: int = 1024,
    seed: int = 0,
    mosaic_prob: float = 0.25,
    max_photos: int = 2000,
    download: bool = False,
) -> Dataset:
    """The pool from torchvision's Imagenette (real ImageNet training images; none of them is an
    attacked photo, which come from the validation set or other packages, but the same content
    check runs). ``download=True`` lets torchvision fetch it when online; offline a missing folder
    is a clear error. At most ``max_photos`` source photos (seeded draw) are decoded."""
    folder = imagenette_train_folder(root)
    if folder is None and download:
        from torchvision.datasets import Imagenette

        Imagenette(str(root), split="train", size="320px", download=True)
        folder = imagenette_train_folder(root)
    if folder is None:
        raise DatasetUnavailable(
            f"no Imagenette training folder under {root}: expected {root}/imagenette2-320/train/"
            "<wnid>/*.JPEG (torchvision.datasets.Imagenette(root, size='320px', download=True) "
            "makes it when online)"
        )
    files = sorted(
        p
        for d in sorted(folder.iterdir())
        if d.is_dir()
        for p in d.iterdir()
        if p.suffix.lower() in (".jpeg", ".jpg", ".png")
    )
    if not files:
        raise DatasetUnavailable(f"the Imagenette folder {folder} holds no JPEG images")
    rng = np.random.RandomState(seed)
    if len(files) > max_photos:
        files = [files[i] for i in sorted(rng.choice(len(files), max_photos, replace=False))]
    hashes, attacked = _attacked_reference(size)
    sources, excluded = [], []
    for p in files:
        blob = p.read_bytes()
        if is_attacked(blob, hashes, attacked, size):
            excluded.append(f"imagenette:{p.parent.name}/{p.name}")
        else:
            sources.append((f"imagenette:{p.parent.name}", f"imagenette:{p.parent.name}/{p.name}", blob))
    if not sources:
        raise DatasetUnavailable(f"every image of {folder} equals an attacked photo")
    return _pool_dataset("imagenette-pool", sources, n_images, size, seed, mosaic_prob, excluded, str(folder))


__all__ = [
    "DEBIAN_PACKAGES",
    "DEBIAN_PACKAGES_V2_EXTRA",
    "PACKAGE_PHOTOS",
    "PACKAGE_POOL_KINDS",
    "debian_packages",
    "imagenette_train_folder",
    "is_attacked",
    "load_imagenette_pool",
    "load_photo_pool",
    "make_training_images",
    "package_photo_files",
]
