import pytest
import torch

from adv2.core import config
from adv2.core.config import ParameterError


def test_bad_choice_names_parameter_value_and_choices():
    with pytest.raises(ParameterError) as err:
        config.validate({"arch": "vgg"})
    msg = str(err.value)
    assert "'arch'" in msg and "'vgg'" in msg and "'resnet'" in msg and "'densenet'" in msg


@pytest.mark.parametrize(
    "name,value",
    [
        ("epsilon", 0),
        ("epsilon", 1.5),
        ("seed", -1),
        ("n_images", 2.5),
        ("seed", 1.0),
        ("archs", []),
        ("archs", ["vgg"]),
        ("device", "tpu"),
        ("n_images", True),
    ],
)
def test_out_of_range_values_fail(name, value):
    with pytest.raises(ParameterError, match=name):
        config.validate({name: value})


def test_valid_values_pass_and_unknown_names_are_ignored():
    params = {"arch": "densenet", "epsilon": 0.031, "archs": ["resnet"], "seed": 3, "whatever": 1}
    assert config.validate(params) is params


def test_extra_rules_apply():
    with pytest.raises(ParameterError, match="steps"):
        config.validate({"steps": 0}, {"steps": config.number(1, integer=True)})


def test_profiles_load_and_are_valid():
    for profile in config.PROFILES:
        params = config.load_profile(profile, "01_target_models")
        assert params["profile"] == profile
        config.validate(params)


def test_resolve_device():
    assert config.resolve_device("cpu").type == "cpu"
    assert config.resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="cuda"):
            config.resolve_device("cuda")


def test_seed_everything_repeats():
    config.seed_everything(5)
    a = torch.rand(3)
    config.seed_everything(5)
    assert torch.equal(a, torch.rand(3))
