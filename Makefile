# Rosetta developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help run test lint fmt build release bench db-start db-stop db-url clean-local

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## Serve the API on :8000 (starts a project-local PostgreSQL when DATABASE_URL is unset)
	@scripts/run-dev.sh

test: ## Run every test (TEST_DATABASE_URL/DATABASE_URL when reachable, else throwaway clusters)
	@scripts/test-tools.sh
	@# The build `make run` uses: the test build enables other features, and without this the
	@# first `make run` after `make test` would compile again.
	$(CARGO) build -p rosetta-server
	$(CARGO) test --workspace --all-targets --all-features --no-fail-fast
	$(CARGO) test --workspace --doc --all-features --no-fail-fast

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

build: ## Debug build
	$(CARGO) build --workspace

release: ## Release build of the server
	$(CARGO) build --release -p rosetta-server

bench: ## Benchmarks of a release build: API load, the WAL monitor at 1000 / 9000 sources, 10M history rows
	$(CARGO) build --release -p rosetta-server -p rosetta-bench
	target/release/rosetta-bench

db-start: ## Start the project-local PostgreSQL
	@scripts/dev-postgres.sh start

db-stop: ## Stop the project-local PostgreSQL
	@scripts/dev-postgres.sh stop

db-url: ## Print the project-local PostgreSQL URL
	@scripts/dev-postgres.sh url

clean-local: ## Stop and delete the project-local PostgreSQL and dev secrets
	@scripts/dev-postgres.sh stop || true
	rm -rf .local
