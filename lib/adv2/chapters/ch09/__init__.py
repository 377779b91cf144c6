"""Chapter 9, Defense 1: interpreters that disagree (issue 25).

The paper's first countermeasure: ADV2 crafted against one interpreter need not fool another, so
several interpreters together can expose it. The modules, in the notebook's order:

* :mod:`~adv2.chapters.ch09.sources` -- chapter 3's PGD and ADV2 inputs of a setting, read from the
  store of :mod:`adv2.chapters.attack_store` (attacked by chapter 3's code when absent);
* :mod:`~adv2.chapters.ch09.ensemble` -- the four maps on one grid, their disagreement (the
  detector's score) and their average (the Rieger-Hansen explanation);
* :mod:`~adv2.chapters.ch09.transfer` -- the transfer matrix and its per-cell verdicts;
* :mod:`~adv2.chapters.ch09.detector` -- AUC with paired bootstrap intervals, ROC, thresholds;
* :mod:`~adv2.chapters.ch09.defense` -- one setting's detector and averaged map;
* :mod:`~adv2.chapters.ch09.adaptive` -- ADV2 against the whole ensemble (and the detector);
* :mod:`~adv2.chapters.ch09.report` -- the chapter's runs, tables, figures, numbers, glue, checks.
"""
