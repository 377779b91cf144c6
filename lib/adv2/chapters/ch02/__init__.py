"""Chapter 2: the four interpreters, their maps and their sanity tests.

The modules, in the notebook's order:

* :mod:`~adv2.chapters.ch02.fmnist_maps` -- the RTS training curves (:func:`rts_curves_figure`), every
  interpreter's maps (:func:`compute_maps`, :func:`maps_figures`) and their sanity tests
  (:func:`evaluate`: deletion curves, preserve & destroy, RTS's mask area for a wrong class) with
  :func:`sanity_table` and :func:`deletion_figure`;
* :mod:`~adv2.chapters.ch02.photo_maps` -- EfficientNet-Lite0 on the offline photos
  (:func:`explain_photos`, :func:`photo_table`, :func:`photo_figure`) and the photo RTS's quality
  (:func:`photo_rts_quality`, :func:`photo_rts_table`, :func:`photo_rts_figure`);
* :mod:`~adv2.chapters.ch02.report` -- :class:`Ch02Result` (``numbers()``, ``glue()``) made by
  :func:`collect`, and :func:`check`.

The classifiers' RTS are loaded by :func:`adv2.chapters._loaders.load_rts_nets`.
"""
