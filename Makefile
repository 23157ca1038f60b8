# FinOps Autopilot. `make demo` and `make test` work on a fresh machine: each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := $(CURDIR)/.venv
# cfn-lint and checkov pin boto3 and networkx below what moto needs: they get a venv of their own.
INFRA_VENV := $(CURDIR)/.venv-infra
SAM_VENV   := $(CURDIR)/.venv-sam
PY      := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)
# One target dir for everything (tests, watch, bench); CI may point it at a cache.
export CARGO_TARGET_DIR ?= $(CURDIR)/target

FUNCTIONS := $(notdir $(wildcard functions/*))
FN    ?= idle-ec2
EVENT ?= events/$(FN)/scheduled.json

.PHONY: help venv build-tools browser infra-check deploy demo org-demo test test-core fuzz build watch invoke bench lint fmt clean emergency-stop resume emergency-status finops debug-build

TABLE  ?= finops-state
REASON ?= operator request
BINDIR ?= $(HOME)/.local/bin

help:
	@echo "make demo     local AWS (moto), a seeded demo account, every function invoked, findings in dollars"
	@echo "make org-demo the organisation fan-out locally: 3 member accounts x 2 regions in moto, one digest"
	@echo "make test     every test (unit, moto end to end, sample events, bench wrapper check)"
	@echo "make test-core the pure core's tests alone (no AWS SDK in the build, no emulator): seconds"
	@echo "make fuzz     one property per parser of outside data at 1,000,000 cases (make test runs 256 each)"
	@echo "make invoke   FN=idle-ec2 EVENT=events/idle-ec2/scheduled.json: one local run against AWS_ENDPOINT_URL (real AWS if unset)"
	@echo "make watch    FN=idle-ec2: cargo lambda watch (serve the function locally)"
	@echo "make build    arm64 release zips of every function (target/lambda/<fn>/bootstrap.zip)"
	@echo "make bench    API calls, wall time and peak memory: idle scan at N=1,000 and 5,000, then every other scan"
	@echo "make lint     rustfmt check and clippy -D warnings"
	@echo "make infra-check  cfn-lint and checkov on infra/template.yaml (part of make test)"
	@echo "make deploy   sam build + sam deploy (--guided the first time; installs the SAM CLI in .venv-sam; needs AWS credentials)"
	@echo "make emergency-stop TABLE=<state table> REASON='...': every function runs as dry-run, approvals execute nothing"
	@echo "make resume TABLE=<state table>: back to the policy's modes (make emergency-status shows the switch)"

# The Python venv: moto server and cargo-lambda, every package pinned.
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

venv: $(VENV)/.installed

$(VENV)/.build-tools: $(VENV)/.installed tests/requirements-build.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements-build.txt
	rustup target add aarch64-unknown-linux-gnu
	touch $@

build-tools: $(VENV)/.build-tools

# Every binary of the workspace, with the features `cargo test --workspace` resolves (no
# `-p`: a package alone resolves fewer), so make demo, make invoke and make test share one build.
debug-build:
	cargo build --quiet --workspace --bins

demo: venv debug-build
	$(CARGO_TARGET_DIR)/debug/demo

org-demo: venv debug-build
	$(CARGO_TARGET_DIR)/debug/demo --org

# Debian's Chromium and ChromeDriver for the browser test, installed when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

$(INFRA_VENV)/.installed: tests/requirements-infra.txt
	python3 -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements-infra.txt
	touch $@

$(SAM_VENV)/.installed: tests/requirements-sam.txt
	python3 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements-sam.txt
	touch $@

infra-check: $(INFRA_VENV)/.installed $(SAM_VENV)/.installed
	$(INFRA_VENV)/bin/cfn-lint infra/template.yaml infra/member-role.yaml
	$(INFRA_VENV)/bin/checkov -f infra/template.yaml -f infra/member-role.yaml --framework cloudformation --compact --quiet --skip-download
	cd infra && AWS_REGION=$${AWS_REGION:-us-east-1} SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint -t template.yaml

# The tests that run a function as `make invoke` does (local_invoke.rs) need its binary: the
# same build as make demo, so a clean clone builds it once for both.
test: venv browser infra-check debug-build
	cargo test --workspace --no-fail-fast

# The pure core's tests alone: no AWS SDK in the build, no emulator, seconds on a warm build.
test-core:
	cargo test -p finops-core
	cargo test -p finops-checks --no-default-features

# One property per parser of outside data at a million generated inputs each (FUZZ_CASES), on the
# test build; the Function URL property goes through the approval function and its table in moto,
# so it runs FUZZ_HTTP_CASES. `make test` runs every property at 256. No regression files.
FUZZ_CASES      ?= 1000000
FUZZ_HTTP_CASES ?= 20000
FUZZ_PROPERTIES := a_scheduled_event_of_any_shape a_compliance_change_of_any_shape a_config_rule_event_of_any_shape \
	an_sns_event_of_any_shape an_sns_message_body_of_any_text any_string_is_refused_as_a_token \
	slack_headers_of_any_value policy_text_of_any_kind a_model_answer_of_any_text a_dollar_amount_of_any_size \
	a_query_or_body_of_any
fuzz: venv
	cargo test --workspace --test hostile_input --no-run
	time PROPTEST_CASES=$(FUZZ_CASES) cargo test -q --workspace --test hostile_input -- --test-threads 2 $(FUZZ_PROPERTIES)
	time PROPTEST_CASES=$(FUZZ_HTTP_CASES) cargo test -q --workspace --test hostile_input -- a_function_url_request

invoke: venv debug-build
	@$(CARGO_TARGET_DIR)/debug/local invoke $(FN) $(EVENT)

watch: venv
	cargo lambda watch -p $(FN) --bin $(FN)

build: build-tools
	cargo lambda build --release --arm64 --output-format zip $(addprefix -p ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do ls -l $(CARGO_TARGET_DIR)/lambda/$$f/bootstrap.zip; done

bench: venv
	cargo build --quiet --release -p finops-tests --bin bench
	$(CARGO_TARGET_DIR)/release/bench

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

# SAM's cargo-lambda builder copies the binaries from <CodeUri>/target whatever CARGO_TARGET_DIR
# says, so it builds there. Guided the first time (it asks, and saves the answers in
# infra/samconfig.toml); once SecretArn is saved there, it deploys with the saved answers.
deploy: build-tools $(SAM_VENV)/.installed
	cd infra && CARGO_TARGET_DIR=$(CURDIR)/target SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build --beta-features
	cd infra && SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam deploy $$(grep -q SecretArn samconfig.toml || echo --guided)

# The operator's `finops` (from the shared debug build) in $(BINDIR).
finops: debug-build
	install -d $(BINDIR)
	install -m 0755 $(CARGO_TARGET_DIR)/debug/finops $(BINDIR)/finops
	@echo "installed $(BINDIR)/finops (finops --help)"

emergency-stop: debug-build
	$(CARGO_TARGET_DIR)/debug/finops --table $(TABLE) stop --reason "$(REASON)"

resume: debug-build
	$(CARGO_TARGET_DIR)/debug/finops --table $(TABLE) resume --reason "$(REASON)"

emergency-status: debug-build
	$(CARGO_TARGET_DIR)/debug/finops --table $(TABLE) status

clean:
	cargo clean
	rm -rf $(VENV)
