"""Architectures: compositions of rnnkit layers for one-to-many, many-to-one, many-to-many."""

from rnnkit.architectures.forecaster import Forecaster
from rnnkit.architectures.many_to_many import ManyToMany, make_layer

__all__ = ["Forecaster", "ManyToMany", "make_layer"]
