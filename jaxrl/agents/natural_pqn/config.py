"""Natural PQN's config: every PQN field, with PQN's names and defaults, plus natural DQN's
preconditioner fields (`FisherFields`: lr is the trust-region step's eta_max, the per-solver
defaults are natural DQN's SOLVER_DEFAULTS). One default differs from PQN's: the LayerNorms
have no learned scale and bias (`layer_norm_params` off), because K-FAC, the default solver,
factors dense layers only."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.natural_dqn.config import FisherFields
from jaxrl.agents.pqn.config import PQNConfig
from jaxrl.config import static


@struct.dataclass
class NaturalPQNConfig(FisherFields, PQNConfig):
    layer_norm_params: bool = static(False, "learn a scale and bias in each LayerNorm (off: plain "
                                     "normalisation, a network of dense layers only, as kfac "
                                     "needs)", minimum=None)
