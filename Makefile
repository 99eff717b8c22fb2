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

# keepalived 2.4.3 for the interop tests, built from ../shared/keepalived/ into a cache outside the
# work tree (about 30 s), with LVS (keepalived -t judges its samples whole); its tests say they were
# skipped where the source is absent
KA24_SRC := ../shared/keepalived/keepalived-2.4.3.tar.gz
KA24_DIR := /var/cache/cloudvip/keepalived-2.4.3-full
KA24     := $(KA24_DIR)/keepalived/keepalived
KA24_DEB := autoconf automake pkg-config libssl-dev libnl-3-dev libnl-genl-3-dev

.PHONY: test check lowest lab venv sysdeps keepalived24 bench clean dist distdeps package-test

# the product (cloudvip, its providers) and, beside it, the lab and test tooling (lab/: the
# cloudvip-lab distribution: emulators, fault injection, crafted packets), never in the product wheel
$(STAMP): pyproject.toml lab/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,aws,hetzner,gcp,azure]' -e ./lab
	touch $@

# the lowest versions pyproject.toml allows of the direct dependencies (tests/lowest_versions.py),
# for the tests that exercise them (tenacity: the mover; prometheus-client: metrics; boto3, hcloud,
# PyYAML, google-cloud-compute, google-auth, azure-mgmt-network, azure-identity: the providers; pyroute2: imported as the agent does): a declared lower bound must work
LOWEST_VENV := .venv-lowest
LOWEST := $(LOWEST_VENV)/.installed
LOWEST_TESTS := tests/unit/test_vip_mover.py tests/unit/test_metrics_snapshot.py tests/unit/test_providers.py \
  tests/unit/test_config.py tests/aws/test_aws_provider.py tests/aws/test_imds.py tests/hetzner/test_hetzner_provider.py \
  tests/gcp/test_gcp_provider.py tests/azure/test_azure_provider.py

$(LOWEST): pyproject.toml lab/pyproject.toml tests/lowest_versions.py
	rm -rf $(LOWEST_VENV) && $(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(PYTHON) tests/lowest_versions.py > $(LOWEST_VENV)/lowest.txt
	$(LOWEST_VENV)/bin/python -m pip install -q -c $(LOWEST_VENV)/lowest.txt -r $(LOWEST_VENV)/lowest.txt \
	  -e . -e ./lab 'pytest>=8' 'hypothesis>=6.100' 'requests>=2.31' 'python-hcl2>=4.3'
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

keepalived24:
	@if [ -x $(KA24) ]; then exit 0; fi; \
	if [ ! -f $(KA24_SRC) ] || [ "$$(id -u)" != 0 ]; then \
	  echo "keepalived 2.4.3 not built (needs root and $(KA24_SRC)): its tests will be skipped"; exit 0; fi; \
	echo "building keepalived 2.4.3 into $(KA24_DIR)"; \
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(KA24_DEB) >/dev/null) && \
	rm -rf $(KA24_DIR) && mkdir -p $(KA24_DIR) && tar xzf $(KA24_SRC) -C $(KA24_DIR) --strip-components=1 && \
	cd $(KA24_DIR) && ./autogen.sh >build.log 2>&1 && ./configure >>build.log 2>&1 && \
	make -j2 >>build.log 2>&1 || { tail -20 $(KA24_DIR)/build.log; exit 1; }

# the quick tier for the inner loop: lint, types, unit tests
check: $(STAMP)
	$(VENV)/bin/ruff check -q cloudvip providers lab tests bench packaging
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

lowest: $(LOWEST)
	@echo "tests at the lowest allowed versions: $$(tr '\n' ' ' < $(LOWEST_VENV)/lowest.txt)"
	$(LOWEST_VENV)/bin/python -c "import cloudvip.agent, cloudvip.hostnet; from pyroute2 import AsyncIPRoute"
	$(LOWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider $(LOWEST_TESTS)

# the three environments are installed side by side; the tests at the lowest versions (light:
# providers against loopback emulators) and the release build with the package's tests (make dist,
# make package-test; the package compressed with gzip here, 12 s instead of xz's 50) run beside
# the lint and the main run, their logs after it
LOWEST_LOG := $(LOWEST_VENV)/tests.log
PACKAGE_LOG := build/package-test.log
test: sysdeps keepalived24
	@$(MAKE) --no-print-directory -j3 $(STAMP) $(CHECKOV) $(LOWEST)
	@mkdir -p build; $(MAKE) --no-print-directory lowest > $(LOWEST_LOG) 2>&1 & lowest=$$!; \
	$(MAKE) --no-print-directory package-test DEB_COMPRESS=gzip > $(PACKAGE_LOG) 2>&1 & package=$$!; \
	$(VENV)/bin/ruff check -q cloudvip providers lab tests bench packaging && $(VENV)/bin/mypy \
	  || { wait $$lowest $$package; exit 1; }; \
	CLOUDVIP_KEEPALIVED24=$(KA24) $(PY) -m pytest -q -p no:cacheprovider --durations=30 --ignore=tests/package \
	  $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; rc=1; fi; \
	wait $$lowest; lrc=$$?; echo "--- make lowest (ran beside the tests above), exit $$lrc:"; cat $(LOWEST_LOG); \
	wait $$package; prc=$$?; echo "--- make package-test (make dist, then the package in a clean bookworm; ran beside" \
	  "the tests above), exit $$prc:"; grep -v "^WARNING: Location" $(PACKAGE_LOG); \
	for u in systemd/*.service; do \
	  systemd-analyze security --offline=yes $$u 2>/dev/null | grep -a "Overall exposure" || true; done; \
	[ $$rc -eq 0 ] && [ $$lrc -eq 0 ] && [ $$prc -eq 0 ]

# release artifacts in dist/: the wheel and sdist (twine check), and the Debian package for bookworm
# (debian/: the application in its own venv under /opt/cloudvip, built with Debian's python3 from
# that wheel; EXTRAS picks the providers' SDKs it carries, all by default; docs/packaging.md)
EXTRAS ?= aws,hetzner,gcp,azure
DEB_COMPRESS ?= xz
DIST_DEB := debhelper dpkg-dev python3-venv groff-base
distdeps:
	@if ! dpkg-query -W $(DIST_DEB) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make dist needs: $(DIST_DEB) (apt-get install as root)"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DIST_DEB) >/dev/null; fi

dist: $(STAMP) distdeps
	rm -rf dist build/deb && mkdir -p build/deb
	$(PY) -m build -q --outdir dist . >build/deb/python-build.log 2>&1 || { cat build/deb/python-build.log; exit 1; }
	$(VENV)/bin/twine check --strict dist/*
	CLOUDVIP_EXTRAS=$(EXTRAS) DEB_COMPRESS=$(DEB_COMPRESS) dpkg-buildpackage -b -us -uc --buildinfo-option=-ubuild/deb --changes-option=-ubuild/deb \
	  --buildinfo-file=build/deb/cloudvip.buildinfo --changes-file=build/deb/cloudvip.changes >build/deb/build.log 2>&1 \
	  || { tail -40 build/deb/build.log; exit 1; }
	mv build/deb/cloudvip_*.deb dist/
	@ls -l dist

# the package installed in a clean bookworm root (mmdebstrap), checked as an operator would use it
PKG_TEST_DEB := mmdebstrap lintian
package-test: dist
	@dpkg-query -W $(PKG_TEST_DEB) >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(PKG_TEST_DEB) >/dev/null; }
	CLOUDVIP_DEB=$$(ls dist/cloudvip_*.deb) CLOUDVIP_PACKAGE_TESTS=required $(PY) -m pytest -q -p no:cacheprovider tests/package

lab: $(STAMP) sysdeps
	$(VENV)/bin/cloudvip lab $(LAB_ARGS)

bench: $(STAMP) sysdeps
	$(PY) bench/fuzz_decoder.py

clean:
	rm -rf $(VENV) $(LOWEST_VENV) .venv-checkov .venv-awscli .pytest_cache .hypothesis build dist *.egg-info lab/*.egg-info
	rm -rf debian/cloudvip debian/.debhelper debian/man debian/files debian/*.substvars debian/debhelper-build-stamp
