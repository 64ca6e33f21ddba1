"""Trust Region Policy Optimization (Schulman et al. 2015), discrete and Gaussian-continuous, on
the on-policy family's rollout and GAE (`jaxrl.agents.onpolicy`), its natural step by the
conjugate gradient and Fisher-vector products of `jaxrl.optim`."""
from jaxrl.agents.base import Algo
from jaxrl.agents.onpolicy import steps_per_update
from jaxrl.agents.trpo.config import TRPOConfig
from jaxrl.agents.trpo.losses import line_search, natural_step, policy_fisher_matvec, surrogate
from jaxrl.agents.trpo.train import make_train, policy_step, validate

ALGO = Algo("trpo", TRPOConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "TRPOConfig", "line_search", "make_train", "natural_step",
           "policy_fisher_matvec", "policy_step", "surrogate", "validate"]
