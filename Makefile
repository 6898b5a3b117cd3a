# make run: set up .venv and start the app.  make test: set up .venv (with the cluster extras) and run every test
# on two pytest-xdist workers (tests/conftest.py groups them).
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.cluster: requirements-cluster.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-cluster.txt
	touch $@

# axe-core (npm), which the accessibility test injects into Chromium; pinned, in tests/node_modules.
AXE := tests/node_modules/axe-core/axe.min.js
$(AXE):
	npm install --silent --no-audit --no-fund --no-save --no-package-lock --prefix tests axe-core@4.14.1

.PHONY: setup run test bench
setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) -m streamlit run app.py

test: $(VENV)/.installed $(VENV)/.cluster $(AXE)
	$(PY) -m pytest -n 2 --dist loadgroup

bench: $(VENV)/.installed $(VENV)/.cluster
	$(PY) -m mnist_model bench
