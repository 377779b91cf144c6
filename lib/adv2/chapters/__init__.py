"""Each chapter's protocol as functions returning typed results (one module per chapter).

A chapter notebook reads: parameters -> one call per section -> figure/table -> glue. The modules
hold what used to be notebook code: metric loops, summaries, table rows, the ``numbers`` written to
``results/<stem>.json``, the glue dictionary the prose quotes ("not run" for what a run left out)
and the chapter's checks, which fail with a message naming what was expected, what was measured
and which parameter to change.

* ``ch01`` -- target classifiers and data (accuracy table, EfficientNet-Lite0 on the photos).
* ``ch02`` -- interpreters (maps, deletion and preserve/destroy sanity tests).
* ``ch03`` -- ADV2 against PGD on every (classifier, interpreter) pair and the offline photos.
* ``ch04`` -- the AID defense (RTSA).
* ``ch05`` -- noise sensitivity (Figure 15).
* ``ch06`` -- Table 10.
* ``ch07`` -- chapter 7: chapter 3's comparison on Fashion-MNIST upsampled to larger sides.
* ``ch09`` -- Defense 1: interpreters that disagree (transfer matrix, ensemble detector, adaptive attack).

Import a chapter's module explicitly (``from adv2.chapters import ch03``); nothing here is
imported eagerly, so each chapter loads only what it needs.
"""
