"""Optax-style gradient transformations: the Fisher (Gauss-Newton) preconditioner for Q-learning
with gram / CG / K-FAC / diagonal solvers, and the conjugate-gradient and Fisher-vector-product
helpers that natural-gradient policy methods (TRPO) reuse."""
from jaxrl.optim.cg import conjugate_gradient, fisher_vector_product, make_fisher_matvec
from jaxrl.optim.fisher import FisherState, fisher_preconditioner
from jaxrl.optim.kfac import KFACFactors

__all__ = ["conjugate_gradient", "fisher_vector_product", "make_fisher_matvec", "FisherState",
           "fisher_preconditioner", "KFACFactors"]
