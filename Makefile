# make run: set up .venv and start the app.  make test: set up .venv (with the cluster extras) and run every test.
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

.PHONY: setup run test bench
setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) -m streamlit run app.py

test: $(VENV)/.installed $(VENV)/.cluster
	$(PY) -m pytest

bench: $(VENV)/.installed $(VENV)/.cluster
	$(PY) -m mnist_model bench
