# The README's two commands: `make run` starts the dashboard, `make test` runs
# the whole test suite. Both create .venv and install what they need first.
PORT ?= 8501
PY := .venv/bin/python

.PHONY: run test lint docs bench clean

run:
	@bash scripts/setup.sh run
	$(PY) -m streamlit run app.py --server.headless true --server.port $(PORT) --browser.gatherUsageStats false --server.fileWatcherType none

test:
	@bash scripts/setup.sh test
	$(PY) -m ruff check .
	$(PY) -m pytest -p no:cacheprovider

docs:
	@bash scripts/setup.sh test
	$(PY) -m mkdocs build --strict --site-dir site

lint:
	$(PY) -m ruff check .

bench:
	@bash scripts/setup.sh test
	$(PY) benchmarks/bench_image.py

clean:
	rm -rf .venv .pytest_cache .ruff_cache artifacts site
