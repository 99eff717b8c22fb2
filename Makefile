# Two commands do everything on a fresh machine (see README.md):
#   make lab    # the self-contained failover lab (needs root: network namespaces)
#   make test   # install everything and run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Debian packages the tests and the lab use: the real keepalived to interoperate with,
# haproxy for the health checks, iproute2 for namespaces/veth, nftables for loss and partitions,
# iptables for the NFQUEUE rule of the lab's delay/jitter (the kernel has no netem).
DEB_PKGS := keepalived haproxy iproute2 iputils-ping nftables iptables tcpdump procps psmisc curl systemd
DEB_CMDS := keepalived haproxy ip nft iptables ping tcpdump pkill killall curl systemd-analyze

CHECKOV := .venv-checkov/.installed

.PHONY: test lab venv sysdeps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,aws,hetzner]'
	touch $@

venv: $(STAMP)

# checkov (static analysis of the Terraform examples) in its own venv: its pins clash with ours
$(CHECKOV):
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install -q checkov
	touch $@

sysdeps:
	@missing=""; for c in $(DEB_CMDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS) >/dev/null; \
	  else echo "not root: cannot install$$missing; namespace tests will be skipped"; fi; \
	fi

test: $(STAMP) $(CHECKOV) sysdeps
	$(VENV)/bin/ruff check -q cloudvip providers tests bench
	$(VENV)/bin/mypy
	@$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; \
	for u in systemd/*.service; do \
	  systemd-analyze security --offline=yes $$u 2>/dev/null | grep -a "Overall exposure" || true; done; \
	exit $$rc

lab: $(STAMP) sysdeps
	$(VENV)/bin/cloudvip lab $(LAB_ARGS)

bench: $(STAMP) sysdeps
	$(PY) bench/fuzz_decoder.py

clean:
	rm -rf $(VENV) .venv-checkov .venv-awscli .pytest_cache .hypothesis build *.egg-info
