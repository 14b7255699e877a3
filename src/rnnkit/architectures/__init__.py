"""Architectures: compositions of rnnkit layers for one-to-many, many-to-one, many-to-many."""

from rnnkit.architectures.forecaster import Forecaster, ForecasterEnsemble
from rnnkit.architectures.many_to_many import ManyToMany, make_layer
from rnnkit.architectures.many_to_one import ManyToOne

__all__ = ["Forecaster", "ForecasterEnsemble", "ManyToMany", "ManyToOne", "make_layer"]
