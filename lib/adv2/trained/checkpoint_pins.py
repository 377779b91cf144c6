"""The sha256 of every committed checkpoint: what :func:`adv2.trained.checkpoints.load_checkpoint` checks.

``checkpoints/manifest.json`` lies beside the weights and is rewritten with them, so it cannot
vouch for them; this table is tracked code. A checkpoint file whose bytes do not hash to its pin,
or that has no pin, is refused (:class:`adv2.trained.checkpoints.CheckpointDamaged`): it is never used,
and never silently trained around (a chapter trains instead only when asked, e.g.
``-p photo_rts_retrain True``).

To add a checkpoint (e.g. a new photo RTSA), after :func:`adv2.trained.checkpoints.save_checkpoint` wrote
``checkpoints/<kind>-<key>.pt``::

    python -m adv2.trained.checkpoint_pins checkpoints/<kind>-<key>.pt

prints the line to paste into ``PINS`` below; commit the ``.pt`` file, ``manifest.json`` and this
file together. A replaced checkpoint (same name, new bytes) needs its line changed the same way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from adv2.trained.files import file_sha256

# file name in checkpoints/ -> sha256 of its bytes
PINS: dict[str, str] = {
    "rts-44b904fb09d9d232.pt": "e563323729eee2c468471c5f8c61767a958b74280bb80d550812ac3a9247aca1",
    "rtsa-6236cb40b6237796.pt": "5b84a3376730fce6e716b6b70684126a7c69aaa226edb8ea877e1b7fa4bd43c3",
    "rtsa-5b49cd034303ae9a.pt": "e4f13cc416d5bdc79160da77615588585ad4f55d37ec138b4d2d3a98177d8721",
    # EfficientNet-Lite2's (issue 27): RTS, RTSA and its beta = 0 control
    "rts-ffadc6f0bdf089a9.pt": "d2da3c3c330b39e31c5931e740ae1a6835e70f86cd6257f9ec1b8d8a96fc9724",
    "rtsa-335c1508a8046bdf.pt": "bcb0626177e922278c7f51ee5b5e50af865477365d19edef512577796757245a",
    "rtsa-5838b0397e76d2a0.pt": "fce7e015473a7c97eee904f8ea4e2dc1a0436045bb4e5010b88481d0fb20dcce",
    "classifier-82eb7480b0e35868.pt": "a0038b88dcf2857d915472417b2c79d96a002c856d29df7625be58e20b405c66",
    "classifier-84e9c6abe8dee4a8.pt": "5aee759e608eecd2a6b255fe5f6e38bfcd111d882d6d66d9a07a5431a689f149",
    "classifier-cbbab6bb2f3c52f0.pt": "b9c04a22d61fa9d4085d944635cfd785ab249b4436e4a0a9942b32d6b381b7ce",
    "classifier-e2ff6378df8f2c43.pt": "0b372cd29b7b5f897044ba10217e6afe1afe91eda62981b74961cf3cc3eb3f50",
    "classifier-e669048c385aa6aa.pt": "a45be7609bd06cf65a720d8c0af0719c05073938b647b0d39b1ebfb71e858787",
    "rts-5ae15e1e69842a7e.pt": "d206256b6dc8fd4ebb9fd8f65d653ddbd27dff1bcf254beff8696f8d11d2b94b",
    "rts-6a0e9d4ec5da624b.pt": "aee1905266c2903bfd426c6143983a794a6791f59b5a5d3b175a2f7dd89f5448",
    "rtsa-063738258c583a36.pt": "317eca1e86073a7b95df2f081cad57a1b5aa515fdef8c4e7c541ecaca481be4f",
    "rtsa-0a2a7032dc71b170.pt": "d2c54fcf06de71d75ac31ed8a4f7f95d356aa094bf5cfdf61659b9636ff19421",
    "rtsa-0dbcb576b2de22b3.pt": "bb329bf1126e113f60a0af59cb7bfb0214d017b570ce48bc79c3abc700a3732b",
    "rtsa-47f37c0a02228653.pt": "9ef11b7cb14ba185441e9aa0fb5e810bb5f7f1d0b4f2f8620cc5378f620438e1",
    "rtsa-515a12ca52855d23.pt": "bfa443eeeadaf5986b39f369f536fd88d3243b562e0e642f1a0325fe04a08198",
    "rtsa-6036c18fabead6b5.pt": "ba006a38016e30d068cb1760dbcd1ba928f42662b1cb503debfc77345981770d",
    "rtsa-7d0ec6c41296673a.pt": "954929c0b9de514f3ee0aded4a17f667bc93839da5ac804fd4d116c6378c6927",
    "rtsa-9adf9c81b8cff1e1.pt": "f49e0d34ab9dea98ecc08bc2137e0a04973d5a5533f145b6dd4e143cf8185eb0",
    "rtsa-9c04c36f0ddb79e3.pt": "4af3b0c80466b8567072e83be9ebbbfc65971aa88fddf49588864ad0bf5ff69c",
    "rtsa-a83dd98d9a5da23c.pt": "d8d79d7dcdc7b8defe285ef26ce302af3f63869f26421929b3caed9dc2bf9db4",
    "rtsa-ada3bd63a13c22c3.pt": "915877f5bd41350977e05e9ffae33a080672858e75bbbc158ed9e2e3257fd792",
    "rtsa-cf2553c21bf20a60.pt": "1c69b97c37f55b10704e6dafa2f30a4519feddeeb45a7d0f0cd74113cd1f268c",
    "rtsa-ee8e47ee4b8b7970.pt": "57390fe9485d8fe8f9ccf4b0bf15441a4bd6a9778213278cec9d3b01c8dad991",
    "rtsa-fe3f6755148c7022.pt": "88235f7c484209071c8cfb7781fcc92bba73defc77d60ede520383315b8ebf5a",
    # chapters 1, 3 and 6's further training seeds (1, 2) at full: classifiers, RTS, RTSA, controls
    "classifier-29740415cca15a26.pt": "740691ba8e4c04cfb7bf0f1c64263ad0fdbdc0cfd03184d4acfa1a5a7cfb66c6",
    "rts-797072f5433e0212.pt": "13db3fbd827f6c3f83b721972ad6c6daaf264525b3fe3c6874b17770bb6dc8bf",
    "classifier-19fd984db12f3606.pt": "f960407d4b803b7beddee8c62ca36ed2488d6bc02862b352fa43bcaa2cf9ac27",
    "rts-a20a5272b884594d.pt": "9e40e51e5d35c5fab317a8693e2c3ca4594d01cc689e81a66a580fae33d726a4",
    "classifier-8efb8c142473ea83.pt": "d77f1cf3632f4fe403d43fa83ffbb5ebc3394dcdcde534464a4a58e1afa0a572",
    "rts-47e690addd19f845.pt": "892e62e0e66ae539f32ffff43e4b19dbd2bc26155de3bc890b672d9321c2e0a6",
    "classifier-bb3576ab0c0d34f3.pt": "9d55a65dee089bfb523eb923a0c56163e1977c021bd69d19c56ff248afc792b9",
    "rts-f848ed2e61bf6499.pt": "5c4385a28609f9c924339e0be101bdba53631ae9f21cc2d0c644dc84a74c8be2",
    "rtsa-b1cf27943575edc2.pt": "26c7251d1c5d5f0b1530a6631a7bfe8f9deb38346c4c19c533da9cec7a19ea49",
    "rtsa-05e8bc927258981e.pt": "9b1684d5892030a8c498c2e07f9d74525077f38e380c4cb8f90e1eed15c440d8",
    "rtsa-d464e6b312c48d4c.pt": "340d6b8232c2d96e10f83783a9f91c511eedaccbf52ab7f5d3edc49b3e9953ad",
    "rtsa-7baca0cc69baba86.pt": "c6b2038dac7740cd4c4ae895ae149870bbb5020867c2fed530c11db6009dd864",
    "rtsa-e7ac0c6b110c9103.pt": "f19d33b049158937e4e2e3971510c99a44ef511b79b032ac25c1d8fff2d6cd12",
    "rtsa-4af5da67e9ac3ab0.pt": "bc8729e0adacfe56357dbaf092facaf81b76035f3025e189ff46ebe34c7f28f2",
    "rtsa-dbde79b10dadca43.pt": "d2d19655994219b83cbdbdfe5bbe62e721dc7c325b3c0ee15df1ee3e99ee72dc",
    "rtsa-7501d6181f600007.pt": "1095a22d653d7fbea8eccce657ef8d439327700b539ec97e01ac2eada3deb6b3",
    # chapter 7's further training seeds (1, 2) at full: the classifier of every input side
    "classifier-9d1a48ff91493c55.pt": "072f4fc9e93b37c4c661cda6029da05473793fb371c2b13a296e1aa3423c6ffc",
    "classifier-fe9a85a2f9d03289.pt": "899315817e8c5520372a6028fe62fe70e648f96c55f2f2034beba6dabdd17a0b",
    "classifier-fd0cb2315d6e6de2.pt": "468c5d689d4f2c2c858af959025e3273aec7d3d86c3377af14b8c34452090217",
    "classifier-c49a4a4e793082cc.pt": "360382f61121a634b0057121b27830d5b8896ef4a61499ee22b9fb926148eb57",
    "classifier-491050663006ad02.pt": "9874e15d39392df8571110dc44133734da278258cc3eaacf4d05995158847811",
    "classifier-cfbac99c4a6ffcc4.pt": "679d934201c562ddb509dc6d89babb9c58302516663786f3d1e4f50e6be39332",
}


def pin_line(path: str | os.PathLike) -> str:
    """The line of ``PINS`` for the checkpoint file at ``path`` (its name and sha256)."""
    path = Path(path)
    return f'    "{path.name}": "{file_sha256(path)}",'


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m adv2.trained.checkpoint_pins CHECKPOINT.pt ...", file=sys.stderr)
        return 2
    for p in paths:
        if not Path(p).is_file():
            print(f"error: {p} is not a file", file=sys.stderr)
            return 2
        print(pin_line(p))
    return 0


if __name__ == "__main__":
    sys.exit(main())
