"""Natural PQN: PQN (no buffer, no target network, LayerNorm, Q(lambda); the same loop and
defaults) whose minibatch step is natural DQN's Fisher-preconditioned, trust-region step
(jaxrl.optim.fisher_preconditioner) instead of RAdam."""
from jaxrl.agents.base import Algo
from jaxrl.agents.natural_pqn.config import NaturalPQNConfig
from jaxrl.agents.natural_pqn.train import make_optimizer, make_train, validate
from jaxrl.agents.pqn import steps_per_update

ALGO = Algo("natural_pqn", NaturalPQNConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "NaturalPQNConfig", "make_optimizer", "make_train", "validate"]
