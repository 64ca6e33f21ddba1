"""PQN (Gallici et al. 2024): Q-learning without a replay buffer or a target network, from many
vectorised envs, a LayerNorm Q-network, Q(lambda) returns over each rollout and epsilon-greedy
acting; discrete actions."""
from jaxrl.agents.base import Algo
from jaxrl.agents.pqn.config import PQNConfig
from jaxrl.agents.pqn.train import make_train, q_lambda_targets, steps_per_update, validate

ALGO = Algo("pqn", PQNConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "PQNConfig", "make_train", "q_lambda_targets", "steps_per_update", "validate"]
