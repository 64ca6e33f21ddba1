"""Deep Q-Networks (Mnih et al. 2015) with double Q-learning (van Hasselt et al. 2016), discrete
actions, a pure-JAX replay buffer and epsilon-greedy exploration."""
from jaxrl.agents.dqn.config import DQNConfig
from jaxrl.agents.dqn.losses import dqn_loss, td_target
from jaxrl.agents.dqn.train import make_train, validate
from jaxrl.agents.base import Algo
from jaxrl.agents.offpolicy import steps_per_update

ALGO = Algo("dqn", DQNConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "DQNConfig", "dqn_loss", "td_target", "make_train", "steps_per_update", "validate"]
