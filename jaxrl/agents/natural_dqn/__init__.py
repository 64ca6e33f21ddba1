"""Natural DQN: DQN (double Q-learning, replay, epsilon-greedy, the same loop and defaults) whose
gradient step is preconditioned by the Fisher (Gauss-Newton) matrix of the Q values with a trust
region (jaxrl.optim.fisher_preconditioner) instead of Adam."""
from jaxrl.agents.natural_dqn.config import SOLVER_DEFAULTS, NaturalDQNConfig
from jaxrl.agents.natural_dqn.train import make_optimizer, make_train, validate
from jaxrl.agents.base import Algo
from jaxrl.agents.offpolicy import steps_per_update

ALGO = Algo("natural_dqn", NaturalDQNConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "NaturalDQNConfig", "SOLVER_DEFAULTS", "make_optimizer", "make_train", "steps_per_update", "validate"]
