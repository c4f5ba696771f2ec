# Local real infrastructure: Kafka (KRaft, one node) + Redis + a schema registry on loopback.
# Ports, versions and folders are TACTFUL_* environment variables; see
# deploy/kafka/README.md. `up` needs the venv for its Kafka readiness check.
SERVICES := TACTFUL_PYTHON="$(abspath $(BIN))/python" bash deploy/local/services.sh
WITH_SERVICES := TACTFUL_PYTHON="$(abspath $(BIN))/python" bash deploy/local/with-services.sh
.PHONY: up down status wipe fetch-kafka test-integration demo

up: install
	@$(SERVICES) up

down:
	@$(SERVICES) down

# Stop all three, then delete Kafka's data folder, Redis's and the registry's under .run/:
# topics, offsets and keys left by `make demo` or the tests go, the next `up` starts empty.
wipe:
	@$(SERVICES) wipe

# Exits 0 whatever runs: it only reports.
status:
	@$(SERVICES) status || true

# Fetch without starting anything: the Kafka jars (Maven Central, cached in
# .cache/kafka/<version>/) plus redis-server and promtool from apt, and the
# schema registry built with Maven (.cache/registry/<version>/, docs/registry.md).
fetch-kafka:
	@$(SERVICES) fetch

# The tier against the real broker and Redis. A broker that cannot start fails
# it (services.sh exits 1; the tests' fixture raises), it is never skipped.
test-integration: install
	@$(WITH_SERVICES) $(BIN)/pytest -q -m integration tests

# Live: Kafka, Redis and the schema registry, two workers, three days of generated journeys
# fed in DURATION seconds (or until Ctrl-C) with a 20% global control group, a catalog deploy
# half-way (a shadow topology goes live), simulated channels, and a terminal view of the
# decisions; then `tactful report` over the run, written to out/demo-report.html and .json.
DURATION ?= 90
RATE ?= 300
demo: install
	@$(WITH_SERVICES) $(TACTFUL) demo --duration $(DURATION) --rate $(RATE)
