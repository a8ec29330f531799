.PHONY: demo test lint bench
demo:  ## open napari with the plugin on the bundled sample (headless: writes a report)
	bash scripts/demo.sh
test:  ## set up .venv + Xvfb and run the test suite
	bash scripts/test.sh
lint:
	bash scripts/bootstrap.sh && .venv/bin/python -m pip install -q -c constraints.txt ruff && .venv/bin/ruff check src tests benchmarks
bench:
	bash scripts/bootstrap.sh && .venv/bin/python benchmarks/bench_engine.py
