"""Chapter 3: ADV2 against PGD on every (classifier, interpreter) pair, and on the offline photos.

The modules, in the notebook's order:

* :mod:`~adv2.chapters.ch03.configs` -- the attack schedules (:func:`fmnist_configs`,
  :func:`photo_configs`, :func:`schedule_table`);
* :mod:`~adv2.chapters.ch03.fmnist_attacks` -- :func:`attack_fmnist` (PGD once per classifier,
  then PGD vs ADV2 per interpreter), its tables and figures;
* :mod:`~adv2.chapters.ch03.photo_attacks` -- :func:`attack_photos` (a photo classifier, EfficientNet-Lite0 by
  default), its curves, tables, figures and issue 14's acceptance;
* :mod:`~adv2.chapters.ch03.photo_report` -- the photo section's numbers and glue per photo
  classifier (:func:`photo_glue`, :func:`all_photo_glue`) and :func:`classifiers_table`;
* :mod:`~adv2.chapters.ch03.report` -- :func:`summarize` (the chapter's numbers, glue and claim
  table), :func:`verdicts` (the claim rules, one place) and :func:`check` (the invariants).

The comparison protocol it shares with chapters 6 and 7 (PGD's step count and warm starts, the
per-image arrays, their intervals and the claims on them) is :mod:`adv2.chapters._compare`.
"""
