# Local broker and Redis targets (make up / make down) live here.
.PHONY: test-integration demo
test-integration:
	@echo "integration tier: not yet wired"
demo: demo-offline
