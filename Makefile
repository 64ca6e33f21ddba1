# Two commands do all the set-up on a fresh machine:
#   make demo   train PPO on CartPole-v1 over 32 seeds on the CPU, print IQM final return with a 95% CI
#   make test   run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
RUN    ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test test-slow bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install -qq -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m jaxrl train --algo ppo --env CartPole-v1 --seeds 32 --total-steps 500000 --out $(RUN)
	@echo "learning curves (IQM over seeds, 95% bands):"
	@$(PY) -m jaxrl plot $(RUN)

test: $(VENV)/.installed
	$(PY) -m pytest

test-slow: $(VENV)/.installed  # also the long tests (natural DQN gram +3 min, cg +80 s; natural PQN +2 min; walker and brax renders +3 min; every brax env LAPACK-free, its solver and two PPO updates +24.5 min beside a study (12.5 min alone without the updates); NAF, SAC and TRPO on brax; the 4-process reproduction test +1 min)
	JAXRL_SLOW_TESTS=1 $(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV)
