"""The photo pool (adv2.trained.photopool) and the photo RTS's architecture options, offline: generated
images and folders (no download; the one test of the installed Debian packages skips without them)."""

import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from adv2.trained import photopool
from adv2.trained.data import DatasetUnavailable


def random_photo(seed: int, size=(300, 200)) -> Image.Image:
    rng = np.random.RandomState(seed)
    return Image.fromarray(rng.randint(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_training_images_are_seeded_crops_and_mosaics():
    images = [random_photo(i) for i in range(5)]
    x, origin = photopool.make_training_images(images, 40, size=32, seed=3, mosaic_prob=0.5)
    assert x.shape == (40, 3, 32, 32) and x.dtype == torch.uint8
    assert 5 <= origin.count(-1) <= 35 and set(origin) <= {-1, 0, 1, 2, 3, 4}
    again, _ = photopool.make_training_images(images, 40, size=32, seed=3, mosaic_prob=0.5)
    other, _ = photopool.make_training_images(images, 40, size=32, seed=4, mosaic_prob=0.5)
    assert torch.equal(x, again) and not torch.equal(x, other)
    with pytest.raises(ValueError, match="no source images"):
        photopool.make_training_images([], 4)


@pytest.fixture(scope="module")
def attacked():
    return photopool._attacked_reference(224)


def attacked_file():
    from pathlib import Path

    import foolbox

    return sorted((Path(foolbox.__file__).parent / "data").glob("imagenet_*_*.jpg"))[0]


def test_attacked_photos_are_recognised_by_content(attacked):
    hashes, x = attacked
    blob = attacked_file().read_bytes()
    assert photopool.is_attacked(blob, hashes, x, 224)
    # the same picture re-encoded (other bytes) is caught by its pixels
    buf = io.BytesIO()
    Image.open(io.BytesIO(blob)).save(buf, format="PNG")
    assert photopool.is_attacked(buf.getvalue(), hashes, x, 224)
    buf = io.BytesIO()
    random_photo(0).save(buf, format="JPEG")
    assert not photopool.is_attacked(buf.getvalue(), hashes, x, 224)


def imagenette_folder(root, n_per_class=3, with_attacked=True):
    train = root / "imagenette2-320" / "train"
    for c, wnid in enumerate(["n01440764", "n02102040"]):
        (train / wnid).mkdir(parents=True)
        for i in range(n_per_class):
            random_photo(10 * c + i).save(train / wnid / f"img_{i}.JPEG", format="JPEG")
    if with_attacked:
        shutil.copy(attacked_file(), train / "n01440764" / "copy_of_attacked.JPEG")
    return root


def test_imagenette_pool_from_a_generated_folder(tmp_path):
    root = imagenette_folder(tmp_path)
    pool = photopool.load_imagenette_pool(root, size=64, n_images=12, seed=0)
    assert pool.name == "imagenette-pool" and pool.x_train.shape == (12, 3, 64, 64)
    assert pool.x_train.dtype == torch.uint8 and (pool.y_train == -1).all()
    assert pool.extra["excluded"] == ["imagenette:n01440764/copy_of_attacked.JPEG"]
    assert pool.extra["photos_per_source"] == {"imagenette:n01440764": 3, "imagenette:n02102040": 3}
    assert pool.fingerprint
    # the class folders themselves are accepted as root too
    direct = photopool.load_imagenette_pool(root / "imagenette2-320" / "train", size=64, n_images=12)
    assert torch.equal(direct.x_train, pool.x_train)


def test_missing_imagenette_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetUnavailable, match="imagenette2-320"):
        photopool.load_imagenette_pool(tmp_path / "nowhere")


def test_missing_pool_names_the_debian_packages(monkeypatch):
    monkeypatch.setattr(photopool, "PACKAGE_PHOTOS", [])
    monkeypatch.setattr(photopool, "DEBIAN_PACKAGES", {"mate-backgrounds": ["/nonexistent/*.jpg"]})
    with pytest.raises(DatasetUnavailable, match="mate-backgrounds.*checkpoint"):
        photopool.load_photo_pool(n_images=4)


def test_packages_v2_adds_sources_and_keeps_the_packages_pool():
    old = photopool.debian_packages("packages")
    v2 = photopool.debian_packages("packages-v2")
    assert old is photopool.DEBIAN_PACKAGES  # the committed photo RTS's training files
    assert {k: v2[k] for k in old} == old and set(v2) - set(old) == {"lxqt-themes", "tuxpaint-data"}
    with pytest.raises(ValueError, match="packages-v2"):
        photopool.debian_packages("wallpapers")


def test_the_pool_kind_selects_a_new_key_and_keeps_the_committed_ones():
    from adv2.trained.photo_recipes import POOLS, PhotoRTSARecipe, PhotoRTSRecipe

    assert set(photopool.PACKAGE_POOL_KINDS) <= set(POOLS)
    # the committed checkpoints (checkpoints/manifest.json) keep their keys
    assert PhotoRTSRecipe().key == "44b904fb09d9d232" and PhotoRTSARecipe().key == "6236cb40b6237796"
    assert PhotoRTSRecipe(pool="packages-v2").key != PhotoRTSRecipe().key


def test_the_photo_classifier_selects_new_keys_and_keeps_lite0s():
    """Issue 27: Lite2's RTS, RTSA and control have their own keys; the default (Lite0) keeps the
    committed checkpoints' keys, whichever way the classifier is named."""
    from adv2.core.config import ParameterError
    from adv2.trained.photo_recipes import PhotoRTSARecipe, PhotoRTSRecipe

    lite0, lite2 = PhotoRTSRecipe(arch="efficientnet-lite0"), PhotoRTSRecipe(arch="efficientnet-lite2")
    assert lite0.key == "44b904fb09d9d232" and PhotoRTSARecipe(rts=lite0).key == "6236cb40b6237796"
    assert PhotoRTSARecipe(rts=lite0).control().key == "5b49cd034303ae9a"
    assert lite0.train_rts_kwargs()["map_size"] == 56 and lite2.train_rts_kwargs()["map_size"] == 65
    rtsa2 = PhotoRTSARecipe(rts=lite2)
    keys0 = {lite0.key, PhotoRTSARecipe().key, PhotoRTSARecipe().control().key}
    keys2 = {lite2.key, rtsa2.key, rtsa2.control().key}
    assert len(keys2) == 3 and not keys0 & keys2
    assert lite2.cache_params()["classifier"] == "efficientnet-lite2@0.1.0"  # its wheel's version
    assert rtsa2.cache_params()["arch"] == "efficientnet-lite2"
    with pytest.raises(ParameterError, match=r"arch='efficientnet-lite3'.*'efficientnet-lite2'"):
        PhotoRTSRecipe(arch="efficientnet-lite3")


V2_COUNTS = {"lxqt-themes": 11, "tuxpaint-data": 19}  # photographs each added package ships


@pytest.mark.skipif(
    not all(
        photopool.Path(p).is_dir() for p in ("/usr/share/lxqt/wallpapers", "/usr/share/tuxpaint/templates")
    ),
    reason="the packages-v2 Debian packages (lxqt-themes, tuxpaint-data) are not installed",
)
def test_packages_v2_sources_exist_when_installed():
    files = photopool.package_photo_files("packages-v2")
    found = {src: sum(s == src for s, _p in files) for src in V2_COUNTS}
    assert found == V2_COUNTS
    assert all(p.is_file() for _s, p in files)
    assert len(files) - len(photopool.package_photo_files("packages")) == sum(V2_COUNTS.values())


def test_packages_v2_pool_still_excludes_the_attacked_photos(tmp_path, monkeypatch):
    for i in range(3):
        random_photo(i).save(tmp_path / f"photo_{i}.jpg", format="JPEG")
    shutil.copy(attacked_file(), tmp_path / "copy_of_attacked.jpg")
    monkeypatch.setattr(photopool, "PACKAGE_PHOTOS", [])
    monkeypatch.setattr(photopool, "DEBIAN_PACKAGES", {})
    monkeypatch.setattr(photopool, "DEBIAN_PACKAGES_V2_EXTRA", {"some-wallpapers": [str(tmp_path / "*.jpg")]})
    pool = photopool.load_photo_pool(size=224, n_images=4, min_photos=2, kind="packages-v2")
    assert pool.extra["excluded"] == ["some-wallpapers:copy_of_attacked.jpg"]
    assert pool.extra["photos_per_source"] == {"some-wallpapers": 3} and pool.source == "packages-v2"


def test_plasma_wallpapers_count_once():
    paths = [photopool.Path(f"/w/X/contents/images/{r}.jpg") for r in ("640x480", "1280x1024", "1920x1080")]
    assert photopool._one_resolution(paths) == [paths[1]]


def test_rts_options_round_trip_through_a_state():
    from adv2.core.interpreters.rts import RTSNet, architecture_options, frozen_rts_from_state
    from adv2.core.models import build_small_cnn

    torch.manual_seed(0)
    model = build_small_cnn("resnet", 10, [str(i) for i in range(10)]).eval()
    net = RTSNet(model, reduce=8, tie_selector=True, cam_prior=True).eval()
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("encoder.")}
    assert architecture_options(state) == {"reduce": 8, "tie_selector": True, "cam_prior": True}
    assert not any(k.startswith("selector") and k != "selector.scale" for k in state)  # head not stored
    back = frozen_rts_from_state(
        model, state, map_size=net.map_size, width=net.width, device="cpu", source="t"
    )
    x, c = torch.rand(3, 1, 28, 28), torch.tensor([0, 4, 9])
    with torch.no_grad():
        assert torch.allclose(back(x, c).mask, net(x, c).mask)
    # the tied selector is the head's class rows, scaled: maps for any class without training
    assert torch.allclose(net.selector(c), model.head.weight[c] * net.selector.scale)
