# Two commands: `make demo` and `make test`. Both create the virtual environment on first use.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test env clean browser headlines

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	@touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/kpi-audit demo --out demo_client
	$(BIN)/kpi-audit run params/demo.yaml

# The browser test needs a local Chromium: install Debian's package when we can (root + apt).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian package) for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will say so"; \
	  else echo "note: chromium not found and cannot be installed here (needs root + apt-get)"; fi; }

# One pytest run: the test suite plus every notebook under nbval (cells marked
# `# NBVAL_CHECK_OUTPUT` must reproduce their saved output; see tests/sanitize.cfg).
test: $(STAMP) browser
	$(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env --nbval-sanitize-with $(CURDIR)/tests/sanitize.cfg

# After a deliberate change in results: re-execute the notebooks on the demo and save the
# outputs of their `# NBVAL_CHECK_OUTPUT` cells (review `git diff notebooks/` before committing).
headlines: $(STAMP)
	$(BIN)/python tools/refresh_headlines.py

clean:
	rm -rf $(VENV) reports/*/ demo_client .pytest_cache
