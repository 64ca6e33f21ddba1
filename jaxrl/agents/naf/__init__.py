"""Normalised advantage functions (NAF; Gu et al. 2016): Q-learning for continuous actions with a
quadratic advantage, Q(s, a) = V(s) - (a - mu(s))^T P(s) (a - mu(s)) / 2, so that the greedy action
is mu(s) and max_a Q(s', a) = V(s'). Off-policy like DQN: a pure-JAX replay buffer, parallel envs,
a Polyak target network and Gaussian exploration noise on mu with a linearly decaying scale."""
from jaxrl.agents.naf.config import NAFConfig
from jaxrl.agents.naf.losses import naf_advantage, naf_loss, naf_q_value, taken_q, td_target
from jaxrl.agents.naf.train import NAFNetwork, make_train, validate
from jaxrl.agents.base import Algo
from jaxrl.agents.offpolicy import steps_per_update

ALGO = Algo("naf", NAFConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "NAFConfig", "naf_advantage", "naf_loss", "naf_q_value", "taken_q", "td_target",
           "NAFNetwork", "make_train", "steps_per_update", "validate"]
