"""Random search on a sign policy (the CartPole newcomer trio): draw parameter vectors i.i.d.,
score each by the return of one episode, keep the best."""
from jaxrl.agents.base import Algo
from jaxrl.agents.episodes import steps_per_update
from jaxrl.agents.random_search.config import RandomSearchConfig
from jaxrl.agents.random_search.train import make_train, validate

ALGO = Algo("random_search", RandomSearchConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "RandomSearchConfig", "make_train", "validate"]
