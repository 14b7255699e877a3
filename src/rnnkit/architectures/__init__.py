"""Architectures: compositions of rnnkit layers for one-to-many, many-to-one, many-to-many and
encoder-decoder models, and the forecaster."""

from rnnkit.architectures.forecaster import Forecaster, ForecasterEnsemble
from rnnkit.architectures.many_to_many import ManyToMany
from rnnkit.architectures.many_to_one import ManyToOne
from rnnkit.architectures.one_to_many import OneToMany
from rnnkit.architectures.seq2seq import Seq2Seq

__all__ = [
    "Forecaster",
    "ForecasterEnsemble",
    "ManyToMany",
    "ManyToOne",
    "OneToMany",
    "Seq2Seq",
]
