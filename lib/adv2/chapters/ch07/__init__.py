"""Chapter 7 (why Fashion-MNIST differs: input size): the protocol behind ``notebooks/07_input_size.ipynb``.

Does the input's dimension limit ADV2? The same PGD / ADV2 comparison as chapter 3 (its attack
schedules, epsilon and step) on Fashion-MNIST at 28 px and bilinearly upsampled to larger sides
(56 and 112 px by default), one channel as the data has, with a classifier trained at each side by
the library's own recipe (:class:`adv2.trained.recipes.ClassifierRecipe` with ``input_size``; at 28 px
the key is that of every other chapter's recipe with the same fields).

What changes with the side and what does not:

* the attacker perturbs all ``side x side`` pixels within the same L-inf ball;
* the classifier is the 28-px network behind a stem that convolves at full resolution and then
  average-pools back to 28x28 (:func:`adv2.core.models._stem`), so CAM's map is 7x7 at every side;
* Grad's map is pooled to 14x14 at every side (pool = side / 14), so every map distance is a
  mean over the same cells at every side, and ADV2's Grad objective weighs the same cells;
* the attacked images and their target classes are the same at every side: the class-balanced,
  seeded sample of chapter 3 restricted to test images every side's classifier gets right.

One call per section: :func:`~adv2.chapters.ch07.classifiers.train_classifiers` (the classifier of
every side, :mod:`~adv2.chapters.ch07.classifiers`), then in :mod:`~adv2.chapters.ch07.input_size`
:func:`attack_sizes` (an :class:`InputSizeResult` whose ``numbers()`` is
``results/07_input_size.json``'s, ``glue()`` the prose's and ``per_image`` the per-image arrays),
:func:`curve_table`, :func:`curve_figure`, :func:`maps_figure`, :func:`verdict_table` and
:func:`check`. With ``train_seeds`` (issue 27), :func:`~adv2.chapters.ch07.classifiers.train_other_seeds`
gives every further training seed's classifiers and :func:`attack_sizes` attacks them the same way on
the same images; the intervals and verdicts pool the seeds, the rest is ``train_seed``'s run.
"""
