# Every target sets up what it needs first (tools/bootstrap.sh is a no-op when nothing changed).
.PHONY: demo test test-quick sanity units testworld integration lint molecule changelog bench build clean help

help:
	@echo "make demo        run playbooks/site.yml end to end on the simulated cloud and print what it built"
	@echo "make test        every suite: sanity, units, test world, integration, lint, molecule"
	@echo "make test-quick  units, test world and integration only (for iterating)"
	@echo "make sanity | units | testworld | integration | realservices | realservices-full | reliability | packaging | lint | molecule | changelog   one suite"
	@echo "make bench       the benchmarks (print figures)"
	@echo "make build       ansible-galaxy collection build"

demo:
	@bash tools/demo.sh

test:
	@bash tools/test.sh all

test-quick:
	@bash tools/test.sh quick

sanity units testworld integration realservices realservices-full reliability packaging lint molecule changelog:
	@bash tools/test.sh $@

bench:
	@bash tools/bench.sh

build:
	@bash tools/bootstrap.sh
	@.venv/bin/ansible-galaxy collection build --force .

clean:
	rm -rf .venv .cache tests/output .testworld hpcops-coe-*.tar.gz
