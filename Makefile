# Thin wrapper: set up, execute the notebooks, render the book, test. See README.md.
PYTHON_SYS ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
PROFILE    ?= auto
NOTEBOOKS  ?= all
STAMP      := $(VENV)/.installed

RUN        ?=

.PHONY: help venv data photo-pool run sweep publish book html pdf readme student test test-fast lint bench lab clean

help:
	@echo "make book    set up, execute every notebook (PROFILE=auto|smoke|quick|full|paper; auto: paper with CUDA, else AUTO_PROFILE_CPU in lib/adv2/core/config.py) into runs/, publish the run if every notebook finished, build _build/html and the PDF"
	@echo "make test    set up, lint and run the whole test suite"
	@echo "make test-fast  unit tests only (no notebooks, browser or slow tests; under a minute)"
	@echo "make lint    ruff check + ruff format --check on lib, tests, benchmarks and book/_ext"
	@echo "make run     execute notebooks into a run folder and publish it if every notebook finished (NOTEBOOKS='01 03', PROFILE=...)"
	@echo "make sweep   chapter 8's grid of chapter-3 runs on Ray at PROFILE (runs/sweeps/scaling-<profile>-<grid hash>/; complete points are skipped)"
	@echo "make publish RUN=runs/<run>   publish a finished run folder (book/notebooks, results, run box)"
	@echo "make html    render the book from the executed notebooks already in book/notebooks"
	@echo "make pdf     the whole book as one PDF (_build/book.pdf), offline, printed by Chromium"
	@echo "make bench   step costs (vs PGD, foolbox, torchattacks), convergence of the attack schedules, ResNet-50 on CUDA; results/bench_*.json"
	@echo "make readme  rewrite the README's run times from results/timings-<profile>.json"
	@echo "make student the notebooks without the exercises' solutions, for a class (_build/student/)"
	@echo "make lab     open the notebooks in JupyterLab"

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[book,test]"
	$(PY) -m pip install --quiet --no-deps -c constraints.txt torchattacks  # see pyproject.toml
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (adv2)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

# Fashion-MNIST offline: Debian's dataset-fashion-mnist package, when apt is usable and it is missing.
data:
	@if [ -z "$$FASHION_MNIST_DIR" ] && [ ! -e /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
	      || echo "warning: could not apt-get install dataset-fashion-mnist; set FASHION_MNIST_DIR"; \
	  else echo "note: Fashion-MNIST not found; set FASHION_MNIST_DIR or it is downloaded when online"; fi; \
	fi
	@$(MAKE) --no-print-directory photo-pool

# The photo RTS's training pool (adv2.trained.photopool): real photographs from Debian wallpaper packages.
# Needed only to train the photo RTS again (its checkpoint is committed): skipped quietly without apt.
# lxqt-themes and tuxpaint-data are the "packages-v2" pool's additions (tuxpaint-data pulls in
# tuxpaint-stamps-default, a 160 MB download).
PHOTO_POOL_PACKAGES = mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 plasma-workspace-wallpapers \
  lxqt-themes tuxpaint-data
photo-pool:
	@if ! dpkg -s $(PHOTO_POOL_PACKAGES) >/dev/null 2>&1 && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends $(PHOTO_POOL_PACKAGES)) >/dev/null 2>&1 \
	    || echo "note: could not apt-get install $(PHOTO_POOL_PACKAGES) (only needed to retrain the photo RTS)"; \
	fi

# A run executes into its own folder under runs/; --publish replaces the published copies only when
# every notebook finished (a failed or interrupted run leaves book/notebooks and results/ alone).
run: venv data
	$(PY) -m adv2 run $(NOTEBOOKS) --profile $(PROFILE) --publish

# Chapter 8 ("How the attacks scale") reads a sweep of chapter 3 over its grid (adv2.book.sweep, on Ray).
# `make run` builds it too: chapter 8's first cell runs the missing points, after chapters 1-3 have
# cached the models every point loads. This target runs it on its own (e.g. on a cluster first).
sweep: venv data
	$(PY) -m adv2 sweep --for 08 --profile $(PROFILE)

publish: venv
	@test -n "$(RUN)" || { echo "usage: make publish RUN=runs/<run>"; exit 2; }
	$(PY) -m adv2 publish $(RUN)

html: venv
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going --quiet
	@echo "open _build/html/index.html"

# One PDF of the whole book: a single-page HTML build printed by Debian's Chromium (offline).
pdf: venv
	$(PY) book/_ext/build_pdf.py

# the PDF first: the HTML build then finds _build/book.pdf, links it from the front page and copies it
book: run readme pdf html

# README's run times, from results/timings-<profile>.json (adv2.book.timings; a test checks it)
readme: venv
	$(PY) -m adv2.book.timings --readme

# the student edition: notebooks/ without the exercises' worked solutions (adv2.book.student; tested)
student: venv
	$(PY) -m adv2.book.student --output _build/student

LINT_PATHS := lib tests benchmarks book/_ext

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

test: venv data lint
	$(PY) -m pytest -q

test-fast: venv data
	$(PY) -m pytest -q -m "not notebook and not browser and not slow"

# one thread per benchmark (ADV2_THREADS); the photo convergence run is the slow part
bench: venv data
	$(PY) benchmarks/bench_interpreters.py
	$(PY) benchmarks/bench_attacks.py
	$(PY) benchmarks/bench_convergence.py --setting fmnist
	$(PY) benchmarks/bench_convergence.py --setting photos
	$(PY) benchmarks/bench_gpu.py  # ResNet-50 on CUDA; without a GPU it records why and moves on
	$(PY) benchmarks/bench_training.py --accuracy --compile  # classifier and RTS training, old vs new
	$(PY) benchmarks/bench_alone.py  # each chapter alone from an empty cache (about half an hour)
	$(PY) benchmarks/bench_report.py

lab: venv
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf _build .pytest_cache
