# Local broker and Redis targets (make up / make down) live here.
.PHONY: test-integration demo
test-integration:
	@echo "integration tier: not yet wired"
demo: demo-offline

# Real local infrastructure: Kafka (KRaft, one node) + Redis on loopback.
# Ports, versions and folders are TACTFUL_* environment variables; see
# deploy/kafka/README.md. `up` needs the venv: its Kafka readiness check runs
# with this venv's python (confluent_kafka).
SERVICES := TACTFUL_PYTHON="$(abspath $(BIN))/python" bash deploy/local/services.sh
.PHONY: up down status fetch-kafka

up: install
	@$(SERVICES) up

down:
	@$(SERVICES) down

# Exits 0 whatever runs: it only reports.
status:
	@$(SERVICES) status || true

# Fetch without starting anything: the Kafka jars (Maven Central, cached in
# .cache/kafka/<version>/) plus redis-server and promtool from apt.
fetch-kafka:
	@$(SERVICES) fetch
