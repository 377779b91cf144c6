"""adv2: helper library for the reproduction of "Interpretable Deep Learning under Fire".

Modules: ``config`` (profiles, validation, device, seeds), ``data``, ``models``, ``artifacts``
(cache), ``interpreters`` (Grad, CAM, RTS, MASK), ``attacks`` (PGD, ADV2), ``defenses`` (AID),
``metrics``, ``plotting``, ``results`` (results contract) and ``runner`` (papermill).
"""

__version__ = "0.1.0"
