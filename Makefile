# The two set-up commands: `make run` (the main job on the embedded demo data) and `make test`
# (every test). Both create .venv and install what they need.
.PHONY: run demo test lint image bench-speed bench-nab bench-servers bench-load clean

VENV := .venv
BIN := $(VENV)/bin

# The service on the embedded demo: replays generated clusters in accelerated time, trains a
# model on first start, serves the dashboard, API and /metrics on http://127.0.0.1:8080/.
run:
	@./scripts/bootstrap.sh
	$(BIN)/aws-anomaly serve

# The batch pipeline on the embedded demo: generate, train (auto), evaluate, HTML report.
demo:
	@./scripts/bootstrap.sh
	$(BIN)/aws-anomaly demo --out out/demo

# Every test; the log ends with the 20 slowest (CI must stay well under 20 minutes).
test:
	@EXTRAS=test ./scripts/bootstrap.sh --system
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout 900 --durations=20

lint:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

# The service image, named as the Helm chart pulls it by default: values.yaml's
# image.repository, tagged with Chart.yaml's appVersion (docs/deploy.md). DOCKER=podman works too.
image:
	$(or $(DOCKER),docker) build -t "$$(awk '/^image:/ {i=1} i && /^  repository:/ {print $$2; exit}' deploy/helm/aws-anomaly/values.yaml):$$(sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' deploy/helm/aws-anomaly/Chart.yaml)" .

bench-speed:
	@./scripts/bootstrap.sh
	$(BIN)/python benchmarks/speed.py

bench-load:
	@EXTRAS=test ./scripts/bootstrap.sh
	$(BIN)/python benchmarks/load.py

bench-nab:
	@EXTRAS=test ./scripts/bootstrap.sh
	$(BIN)/aws-anomaly bench nab --data $${AWS_ANOMALY_DATA:-../shared/data}/nab --out out/bench-nab

bench-servers:
	@./scripts/bootstrap.sh
	$(BIN)/aws-anomaly bench servers --data $${AWS_ANOMALY_DATA:-../shared/data}/servers --out out/bench-servers

clean:
	rm -rf out test-output .pytest_cache
