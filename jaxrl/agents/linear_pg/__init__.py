"""linear_pg (the CartPole newcomer trio): a stochastic logistic policy over two actions,
P(action 1 | s) = sigmoid(score(s)), score linear (or an MLP), trained by REINFORCE with a
baseline from whole episodes; it acts greedily (the sign of the score) when evaluated."""
from jaxrl.agents.base import Algo
from jaxrl.agents.episodes import steps_per_update
from jaxrl.agents.linear_pg.config import LinearPGConfig
from jaxrl.agents.linear_pg.losses import (logistic_log_prob, reinforce_loss, returns_to_go,
                                           time_baseline)
from jaxrl.agents.linear_pg.train import make_train, validate

ALGO = Algo("linear_pg", LinearPGConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "LinearPGConfig", "logistic_log_prob", "make_train", "reinforce_loss",
           "returns_to_go", "time_baseline", "validate"]
