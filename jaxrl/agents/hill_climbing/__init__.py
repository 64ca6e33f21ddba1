"""Hill climbing on a sign policy (the CartPole newcomer trio): perturb the current parameters
by noise of a given scale, keep the perturbation if it scores better."""
from jaxrl.agents.base import Algo
from jaxrl.agents.episodes import steps_per_update
from jaxrl.agents.hill_climbing.config import HillClimbingConfig
from jaxrl.agents.hill_climbing.train import make_train, validate

ALGO = Algo("hill_climbing", HillClimbingConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "HillClimbingConfig", "make_train", "validate"]
